//! The real `kubectl` binary against the stand-in. Skipped (with a message) when kubectl is
//! not on PATH.

use std::process::Command;

use standin::Standin;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn kubectl(kubeconfig: std::path::PathBuf, args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    // kubectl blocks; run it off the runtime thread so the in-process server keeps serving.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_commands_work() {
    if !kubectl_available() {
        eprintln!("kubectl not on PATH; skipping");
        return;
    }
    let s = Standin::start().await;
    s.add_namespace("dev-a", &[("namespace-scheduler/cost-center", "IT")]);
    s.add_namespace("qa-b", &[]);
    s.add_deployment("dev-a", "web", 3);
    s.add_deployment("qa-b", "api", 2);
    s.add_statefulset("dev-a", "db", 1);
    s.add_cronjob("dev-a", "job", false);
    let dir = std::env::temp_dir().join(format!("standin-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    s.write_kubeconfig(&kc).unwrap();
    let run = |args: &'static [&'static str]| kubectl(kc.clone(), args);

    let (ok, out) = run(&["get", "ns"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("dev-a") && out.contains("qa-b") && out.contains("Active"),
        "{out}"
    );

    let (ok, out) = run(&["get", "deploy", "-A"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("NAMESPACE") && out.contains("web") && out.contains("3/3"),
        "{out}"
    );

    let (ok, out) = run(&["scale", "deployment/web", "-n", "dev-a", "--replicas=0"]).await;
    assert!(ok, "{out}");
    assert_eq!(s.replicas("deploy", "dev-a", "web"), Some(0));
    let (ok, out) = run(&["scale", "sts/db", "-n", "dev-a", "--replicas=2"]).await;
    assert!(ok, "{out}");
    assert_eq!(s.replicas("sts", "dev-a", "db"), Some(2));

    let (ok, out) = run(&["annotate", "deployment/web", "-n", "dev-a", "foo=bar", "--overwrite"]).await;
    assert!(ok, "{out}");
    assert_eq!(
        s.annotation("apps/v1", "deploy", Some("dev-a"), "web", "foo")
            .as_deref(),
        Some("bar")
    );
    let (ok, out) = run(&["annotate", "deployment/web", "-n", "dev-a", "foo-"]).await;
    assert!(ok, "{out}");
    assert_eq!(s.annotation("apps/v1", "deploy", Some("dev-a"), "web", "foo"), None);

    let (ok, out) = run(&[
        "patch",
        "cronjob",
        "job",
        "-n",
        "dev-a",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ])
    .await;
    assert!(ok, "{out}");
    let cj = s.get("batch/v1", "cj", Some("dev-a"), "job").unwrap();
    assert_eq!(cj["spec"]["suspend"], true);
    let (ok, out) = run(&[
        "patch",
        "deploy",
        "api",
        "-n",
        "qa-b",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
    ])
    .await;
    assert!(ok, "{out}");
    assert_eq!(s.replicas("deploy", "qa-b", "api"), Some(5));
    let (ok, out) = run(&[
        "patch",
        "deploy",
        "api",
        "-n",
        "qa-b",
        "-p",
        r#"{"metadata":{"labels":{"x":"y"}}}"#,
    ])
    .await;
    assert!(ok, "strategic merge: {out}");

    let (ok, out) = run(&["get", "deploy", "web", "-n", "dev-a", "-o", "jsonpath={.spec.replicas}"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "0");
    let (ok, out) = run(&["get", "ns", "-l", "namespace-scheduler/cost-center=IT", "-o", "name"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "namespace/dev-a");
    let (ok, out) = run(&["get", "deploy", "missing", "-n", "dev-a"]).await;
    assert!(!ok && out.contains("NotFound"), "{out}");

    let manifest = dir.join("d.yaml");
    std::fs::write(
        &manifest,
        serde_saphyr::to_string(&standin::seed::deployment("qa-b", "fresh", 2)).unwrap(),
    )
    .unwrap();
    let m = manifest.to_str().unwrap().to_string();
    let (ok, out) = kubectl(kc.clone(), &["apply", "-f", &m]).await;
    assert!(ok, "{out}");
    assert_eq!(s.replicas("deploy", "qa-b", "fresh"), Some(2));
    let (ok, out) = kubectl(kc.clone(), &["delete", "-f", &m]).await;
    assert!(ok, "{out}");
    assert!(s.get("apps/v1", "deploy", Some("qa-b"), "fresh").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
