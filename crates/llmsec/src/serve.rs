//! `llmsec serve`: the REST/GraphQL service on the embedded default (a
//! SQLite file under `./data`, 127.0.0.1:8080), or as configured.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use llmsec_server::Server;
use llmsec_server::config::ServerConfig;

/// Arguments of `llmsec serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Server configuration file (.toml, .yaml/.yml or .json).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the SQLite database [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Development mode: the GraphQL playground at /graphql/playground.
    #[arg(long)]
    pub dev: bool,
}

/// Where a command that reads the server's store finds it: the same
/// configuration, variables and flags as `llmsec serve`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Server configuration file, as `llmsec serve` takes it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the SQLite database [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The server configuration these arguments give (file, then
    /// `LLMSEC_*` variables, then flags).
    pub fn load(&self) -> anyhow::Result<ServerConfig> {
        load_config(&ServeArgs {
            config: self.config.clone(),
            listen: None,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            dev: false,
        })
    }
}

/// Refuses a SQLite database that is not there: opening it would create an
/// empty one, and a command reading it would report on nothing.
pub fn require_database(config: &ServerConfig) -> anyhow::Result<()> {
    let url = config.database_url();
    if let Some(path) = url.strip_prefix("sqlite://")
        && !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        anyhow::bail!("no database at {path} (use --data-dir or --database-url)");
    }
    Ok(())
}

/// Reads the configuration: file, then `LLMSEC_*` variables, then flags.
pub fn load_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut config = match &args.config {
        Some(p) => ServerConfig::from_file(p)?,
        None => ServerConfig::default(),
    };
    config.apply_env(|k| std::env::var(k).ok())?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(u) = &args.database_url {
        config.database_url = Some(u.clone());
    }
    if args.dev {
        config.dev_mode = true;
    }
    config.validate()?;
    Ok(config)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLMSEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// Arguments of `llmsec gateway`.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Server configuration file with a [gateway] section (.toml, .yaml/.yml or .json).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Address to listen on [default: the file's `listen`, else 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the SQLite database [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// What a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The whole service, with the gateway routes when `[gateway]` is set.
    Full,
    /// The gateway routes only (and the server's health routes).
    GatewayOnly,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    run_mode(load_config(args)?, Mode::Full)
}

/// Runs only the gateway, against the store the config names, until SIGINT
/// or SIGTERM.
pub fn run_gateway(args: &GatewayArgs) -> anyhow::Result<ExitCode> {
    let serve = ServeArgs {
        config: Some(args.config.clone()),
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        dev: false,
    };
    let config = load_config(&serve)?;
    if config.gateway.is_none() {
        anyhow::bail!("{}: no [gateway] section: `llmsec gateway` has nothing to serve", args.config.display());
    }
    run_mode(config, Mode::GatewayOnly)
}

/// The router a process serves: the service's routes and, when configured,
/// the gateway's; or the gateway's with the health routes alone.
fn app(server: &Server, mode: Mode) -> anyhow::Result<axum::Router> {
    let state = server.state();
    let gateway = match &state.config.gateway {
        Some(g) => Some(llmsec_gateway::router(state.clone(), g.clone()).context("cannot start the gateway")?),
        None => None,
    };
    Ok(match (mode, gateway) {
        (Mode::Full, Some(g)) => server.router().merge(g),
        (Mode::Full, None) => server.router(),
        (Mode::GatewayOnly, Some(g)) => g.route("/healthz", axum::routing::get(healthz)).fallback(not_found),
        (Mode::GatewayOnly, None) => anyhow::bail!("the config has no [gateway] section"),
    })
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Paths the gateway-only process does not serve, in OpenAI's error shape.
async fn not_found(uri: axum::http::Uri) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    let message = format!("no route for {}", uri.path());
    let body = serde_json::json!({"error": {"message": message, "type": "not_found_error", "code": "not_found", "param": null}});
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body))
}

fn run_mode(config: ServerConfig, mode: Mode) -> anyhow::Result<ExitCode> {
    init_logging();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let admin_key = std::env::var("LLMSEC_ADMIN_KEY").ok().filter(|k| !k.is_empty());
        let listen = config.listen;
        let db = config.database_url();
        let server = Server::start(config, admin_key).await.context("cannot start the server")?;
        if let Some(key) = server.bootstrap_key() {
            let file = save_key(&server.state().config.data_dir, key);
            let mut out = std::io::stdout().lock();
            out.write_all(announcement(key, file.as_deref()).as_bytes())?;
            out.flush()?;
        }
        let app = app(&server, mode)?;
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let what = if mode == Mode::GatewayOnly { "llmsec gateway" } else { "llmsec" };
        tracing::info!(%addr, database = %llmsec_store::redact_url(&db), "{what} listening on http://{addr}");
        let limits = server.state().config.limits.clone();
        let capped = llmsec_server::listener::CappedListener::new(listener, &limits);
        let header_read_timeout = std::time::Duration::from_millis(limits.header_read_timeout_ms);
        let served = llmsec_server::listener::serve(capped, app, header_read_timeout, shutdown_signal()).await;
        server.shutdown().await;
        served.context("server failed")?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Writes the first operator key to `admin-key` in the data directory, readable
/// by its owner only, so that it is not lost in a scrolled-away terminal.
/// `None` when it could not be written (the terminal block still shows it).
fn save_key(data_dir: &std::path::Path, key: &str) -> Option<std::path::PathBuf> {
    let path = data_dir.join("admin-key");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = std::fs::create_dir_all(data_dir).and_then(|_| {
        let mut f = opts.open(&path)?;
        // An older file keeps its mode through `open`: narrow it too.
        #[cfg(unix)]
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        writeln!(f, "{key}")
    });
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the admin key file");
            None
        }
    }
}

/// The framed block that announces the first operator key: it stands out
/// from cargo's and the logs' output. The first line names it and the
/// key sits alone on the second, for scripts.
fn announcement(key: &str, file: Option<&std::path::Path>) -> String {
    let rule = "=".repeat(78);
    let mut s = format!("llmsec: created the first operator key (shown once; store it now):\n{key}\n{rule}\n");
    s.push_str("  Use it as:  Authorization: Bearer <key>\n");
    match file {
        Some(p) => s.push_str(&format!(
            "  Also written to {} (mode 0600): delete that file once the key is stored.\n",
            p.display()
        )),
        None => s.push_str("  It was not written to a file: copy it from above.\n"),
    }
    s.push_str(&rule);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_is_framed_and_kept_owner_only() {
        let dir = std::env::temp_dir().join(format!("llmsec-key-{}", std::process::id()));
        let path = save_key(&dir, "lsk_0123_abcd").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "lsk_0123_abcd\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let text = announcement("lsk_0123_abcd", Some(&path));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("first operator key"));
        assert_eq!(lines[1], "lsk_0123_abcd");
        assert!(lines[2].starts_with("=====") && lines.last().unwrap().starts_with("====="));
        assert!(text.contains(&path.display().to_string()) && text.contains("0600"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn gateway_needs_a_gateway_section() {
        let path = std::env::temp_dir().join(format!("llmsec-gw-{}.toml", std::process::id()));
        std::fs::write(&path, "listen = \"127.0.0.1:0\"\n").unwrap();
        let args = GatewayArgs { config: path.clone(), listen: None, data_dir: None, database_url: None };
        let e = run_gateway(&args).unwrap_err().to_string();
        assert!(e.contains("no [gateway] section"), "{e}");
        std::fs::write(&path, "[gateway]\nupstreams = []\n").unwrap();
        let e = format!("{:#}", run_gateway(&args).unwrap_err());
        assert!(e.contains("gateway.upstreams"), "{e}");
        let _ = std::fs::remove_file(&path);
    }

    /// One raw HTTP/1.1 request; the status line and body of the answer.
    async fn http(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out.lines().next().unwrap_or("").to_owned();
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn serve_mounts_the_gateway_and_gateway_serves_it_alone() {
        let dir = std::env::temp_dir().join(format!("llmsec-serve-gw-{}", std::process::id()));
        let mut config = ServerConfig { data_dir: dir.clone(), ..ServerConfig::default() };
        config.gateway =
            Some(toml::from_str("[[upstreams]]\nname = \"local\"\nbase_url = \"http://127.0.0.1:9/v1\"\n").unwrap());
        let server = Server::start(config, Some("test-admin-key-0123456789".into())).await.unwrap();
        for (mode, api_routes) in [(Mode::Full, true), (Mode::GatewayOnly, false)] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let limits = server.state().config.limits.clone();
            let capped = llmsec_server::listener::CappedListener::new(listener, &limits);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let app = app(&server, mode).unwrap();
            let task = tokio::spawn(llmsec_server::listener::serve(
                capped,
                app,
                std::time::Duration::from_secs(5),
                async move {
                    let _ = stopped.await;
                },
            ));
            let (status, body) = http(addr, "POST", "/v1/chat/completions").await;
            assert!(status.contains(" 401 ") && body.contains("authentication_error"), "{mode:?}: {status} {body}");
            let (status, _) = http(addr, "GET", "/healthz").await;
            assert!(status.contains(" 200 "), "{mode:?}: {status}");
            let (status, _) = http(addr, "GET", "/api/security/events").await;
            assert_eq!(status.contains(" 401 "), api_routes, "{mode:?}: {status}");
            if !api_routes {
                let (status, body) = http(addr, "GET", "/api/security/events").await;
                assert!(status.contains(" 404 ") && body.contains("not_found_error"), "{status} {body}");
            }
            let _ = stop.send(());
            let _ = task.await;
        }
        server.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_override_the_defaults() {
        let args = ServeArgs {
            config: None,
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            database_url: None,
            dev: true,
        };
        let c = load_config(&args).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.database_url(), "sqlite:///tmp/x/llmsec.db");
        assert!(c.dev_mode);
    }
}
