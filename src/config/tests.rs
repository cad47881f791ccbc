use super::*;

fn err_of(vars: &[(&str, &str)]) -> String {
    Config::from_vars(vars.iter().copied()).unwrap_err().to_string()
}

#[test]
fn defaults_match_the_spec() {
    let c = Config::from_vars([("POD_NAMESPACE", "task-scheduler")]).unwrap();
    assert_eq!(c.cluster_name, "local");
    assert_eq!(c.audit_table, "task-scheduler-logs-production");
    assert_eq!(c.permissions_table, "cost-center-permissions-production");
    assert_eq!(c.windows_table, "namespace-scheduler-windows-production");
    assert_eq!(c.business.timezone, chrono_tz::America::Bogota);
    assert_eq!((c.business.start_minute, c.business.end_minute), (8 * 60, 18 * 60));
    // docs/reference.md §2, verbatim.
    let spec = "kube-system, kube-public, kube-node-lease, default, karpenter, kyverno, argocd, \
                istio-system, monitoring, task-scheduler, cert-manager, ingress-nginx, \
                amazon-cloudwatch, calico-system, tigera-operator";
    let want: BTreeSet<String> = spec.split(", ").map(|s| s.trim().to_string()).collect();
    assert_eq!(c.protected_namespaces, want);
    assert_eq!(c.max_active_off_hours, 5);
    assert_eq!(c.max_activation_hours, 72);
    assert_eq!(c.scale_concurrency, 16);
    assert!(c.rollback_enabled);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.log_level, "info");
}

#[test]
fn own_namespace_is_always_protected() {
    let c = Config::from_vars([("POD_NAMESPACE", "ops"), ("PROTECTED_NAMESPACES", "kube-system")]).unwrap();
    assert!(c.is_protected("ops"));
    assert!(c.is_protected("kube-system"));
    assert!(!c.is_protected("default"));
}

#[test]
fn a_custom_list_keeps_the_floor() {
    let c = Config::from_vars([("POD_NAMESPACE", "ops"), ("PROTECTED_NAMESPACES", "only-this")]).unwrap();
    let want: BTreeSet<String> = ["only-this", "ops", "kube-system", "kube-public", "kube-node-lease"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(c.protected_namespaces, want);
}

#[test]
fn a_blank_list_is_an_error_not_an_empty_set() {
    for blank in ["", "   ", ",", " , ,, "] {
        let msg = err_of(&[("PROTECTED_NAMESPACES", blank)]);
        assert!(
            msg.contains("PROTECTED_NAMESPACES") && msg.contains("unset"),
            "{blank:?}: {msg}"
        );
        assert_eq!(
            Config::from_vars([("PROTECTED_NAMESPACES", blank)]).unwrap_err().exit(),
            crate::Exit::Usage
        );
    }
}

#[test]
fn bad_values_name_the_variable_and_the_value() {
    let cases: &[(&str, &str)] = &[
        ("BUSINESS_HOURS_TIMEZONE", "Mars/Olympus"),
        ("BUSINESS_START_HOUR", "25"),
        ("BUSINESS_END_HOUR", "0"),
        ("BUSINESS_HOLIDAYS", "2026-13-01"),
        ("BUSINESS_DAYS", "Mon-Funday"),
        ("BUSINESS_HOLIDAYS_COUNTRY", "ZZ"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
        ("SCALE_CONCURRENCY", "0"),
        ("ROLLBACK_ENABLED", "maybe"),
        ("NON_BUSINESS_MAX_ACTIVE_NAMESPACES", "-1"),
        ("MAX_ACTIVATION_HOURS", "0"),
        ("NAMESPACE_SELECTOR", "env in (dev"),
        ("PROTECTED_NAMESPACES", "kube-system,Bad_Name"),
        ("DYNAMODB_TABLE_NAME", "a"),
        ("WINDOWS_TABLE_NAME", "windows table"),
        ("WINDOWS_TABLE_NAME", "w"),
        ("NS_SCHEDULER_RETRY_ATTEMPTS", "abc"),
        ("NS_SCHEDULER_REQUEST_TIMEOUT_MS", "0"),
        ("NS_SCHEDULER_LEASE_SECONDS", "1"),
        ("NS_SCHEDULER_AUDIT_CLOCK", "sundial"),
        ("PRICE_PER_VCPU_HOUR", "-0.04"),
        ("PRICE_PER_VCPU_HOUR", "NaN"),
        ("PRICE_PER_GIB_HOUR", "inf"),
        ("PRICE_PER_GIB_HOUR", "1e-3"),
        ("PRICE_PER_GIB_HOUR", "0,004"),
        ("PRICE_PER_VCPU_HOUR", "$0.04"),
        ("PRICE_PER_VCPU_HOUR", "."),
        ("METRICS_FORMAT", "prometheus"),
    ];
    for (var, value) in cases {
        let msg = err_of(&[(var, value)]);
        assert!(msg.contains(var), "{var}: message {msg:?} does not name the variable");
        let shown = value.rsplit(',').next().unwrap();
        assert!(
            msg.contains(shown),
            "{var}: message {msg:?} does not show the value {shown:?}"
        );
    }
}

#[test]
fn prices_default_to_fargate_and_accept_plain_decimals() {
    let c = Config::from_vars([("POD_NAMESPACE", "task-scheduler")]).unwrap();
    assert_eq!(c.prices, Prices::DEFAULT);
    assert_eq!((c.prices.per_vcpu_hour, c.prices.per_gib_hour), (0.04048, 0.004445));
    assert_eq!(c.metrics_format, MetricsFormat::None);
    let c = Config::from_vars([
        ("PRICE_PER_VCPU_HOUR", " 0.05 "),
        ("PRICE_PER_GIB_HOUR", "0"),
        ("METRICS_FORMAT", "emf"),
    ])
    .unwrap();
    assert_eq!((c.prices.per_vcpu_hour, c.prices.per_gib_hour), (0.05, 0.0));
    assert_eq!(c.metrics_format, MetricsFormat::Emf);
    for ok in ["1", "1.", ".5", "0.004445", "12.5"] {
        assert!(parse_price("--price-vcpu-hour", ok).is_ok(), "{ok}");
    }
    let huge = "9".repeat(400);
    let e = parse_price("--price-gib-hour", &huge).unwrap_err().to_string();
    assert!(e.contains("--price-gib-hour"), "{e}");
    for empty in ["", " "] {
        let e = err_of(&[("PRICE_PER_VCPU_HOUR", empty)]);
        assert!(e.contains("PRICE_PER_VCPU_HOUR"), "{e}");
    }
}

#[test]
fn start_must_be_before_end() {
    let msg = err_of(&[("BUSINESS_START_HOUR", "18"), ("BUSINESS_END_HOUR", "8")]);
    assert!(msg.contains("BUSINESS_END_HOUR") && msg.contains('8'), "{msg}");
    assert!(Config::from_vars([("BUSINESS_START_HOUR", "0"), ("BUSINESS_END_HOUR", "24")]).is_ok());
}

#[test]
fn python_log_level_names_are_accepted() {
    for (given, want) in [
        ("DEBUG", "debug"),
        ("WARNING", "warn"),
        ("error", "error"),
        ("warn", "warn"),
    ] {
        assert_eq!(Config::from_vars([("LOG_LEVEL", given)]).unwrap().log_level, want);
    }
}

#[test]
fn empty_country_means_no_country_calendar() {
    assert!(Config::from_vars([("BUSINESS_HOLIDAYS_COUNTRY", "")]).is_ok());
}
