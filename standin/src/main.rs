//! `kube-standin`: run the stand-in API server in the foreground.

use std::time::Duration;

use standin::{seed, Options, Standin};

const USAGE: &str = "usage: kube-standin [--listen 127.0.0.1:PORT] [--kubeconfig-out PATH] \
[--seed demo|FILE.yaml|FILE.json] [--latency-ms N] [--enable-keda] [--enable-activation-requests] [--enable-rollouts] [--strict-updates] [--fault-seed N] [--no-watch-cache]
       kube-standin --print-seed demo   (the demo seed as one JSON List, for `kubectl apply -f -` on a real cluster)";

fn parse_args() -> Result<(Options, Option<String>), String> {
    let mut opts = Options::default();
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => opts.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--kubeconfig-out" => kubeconfig = Some(value()?),
            "--seed" => {
                let v = value()?;
                if v == "demo" {
                    opts.seed.extend(seed::demo());
                } else {
                    let text = std::fs::read_to_string(&v).map_err(|e| format!("--seed {v}: {e}"))?;
                    opts.seed
                        .extend(seed::parse_seed(&text).map_err(|e| format!("--seed {v}: {e}"))?);
                }
            }
            "--latency-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("--latency-ms: {e}"))?;
                opts.latency = Duration::from_millis(ms);
            }
            "--fault-seed" => opts.fault_seed = value()?.parse().map_err(|e| format!("--fault-seed: {e}"))?,
            "--enable-keda" => opts.enable_keda = true,
            "--enable-activation-requests" => opts.enable_activation_requests = true,
            "--enable-rollouts" => opts.enable_rollouts = true,
            "--strict-updates" => opts.strict_updates = true,
            "--no-watch-cache" => opts.watch_cache = false,
            "--print-seed" => {
                let v = value()?;
                if v != "demo" {
                    return Err(format!("--print-seed: only `demo` can be printed, not {v:?}"));
                }
                let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": seed::demo()});
                println!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
                std::process::exit(0);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((opts, kubeconfig))
}

#[tokio::main]
async fn main() {
    let (opts, kubeconfig) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("kube-standin: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let server = match Standin::try_start_with(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-standin: {e}");
            std::process::exit(1);
        }
    };
    if let Some(path) = kubeconfig {
        if let Err(e) = server.write_kubeconfig(&path) {
            eprintln!("kube-standin: writing {path}: {e}");
            std::process::exit(1);
        }
    }
    println!("{}", server.url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await;
}
