//! The CLI's flags and commands, and how errors map to exit codes.

mod args;
mod mcp;
mod monitor;
mod output;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use horace_client::{Client, ClientError, FileRef, FileUpdate, QueryError};

pub use self::args::Args;
use self::args::Collections;
pub use self::args::Command;
use self::output::Out;

/// Exit code of a failed command.
pub const EXIT_ERROR: u8 = 1;
/// Exit code when the file, version or collection does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when the server refused the call (not a writer, wrong token).
pub const EXIT_DENIED: u8 = 4;
/// Exit code when the query service cannot be reached.
pub const EXIT_CONNECT: u8 = 5;
/// Exit code when a restore could not write the file back (`RestoreFailed`).
pub const EXIT_RESTORE_FAILED: u8 = 6;
/// Exit code when the server had no connection free for this caller (`TooManyConnections`).
pub const EXIT_TOO_MANY_CONNECTIONS: u8 = 7;
/// Exit code of `horace status` when the watcher answers but is degraded
/// (`StatusReport::degradation`: zfsd unreachable with snapshots enabled, failing paths, …).
pub const EXIT_DEGRADED: u8 = 8;
/// Exit code of `horace sync` when something written before it is not cataloged
/// (`SyncReport::missing`; the list was printed).
pub const EXIT_NOT_SYNCED: u8 = 9;

/// `horace status` found the watcher degraded; the status was printed.
#[derive(Debug)]
pub struct Degraded(pub Vec<String>);

impl std::fmt::Display for Degraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "degraded: {}", self.0.join("; "))
    }
}

impl std::error::Error for Degraded {}

/// `horace sync` answered, but this many paths written before it are not cataloged.
#[derive(Debug)]
pub struct NotSynced(pub u64);

impl std::fmt::Display for NotSynced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not synced: {} paths not cataloged", self.0)
    }
}

impl std::error::Error for NotSynced {}

/// Ends the command with this exit status and nothing more on stderr (`horace check`
/// printed its line already).
#[derive(Debug)]
pub struct Quiet(pub u8);

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Quiet {}

/// The exit status of a [`Quiet`] error.
pub fn quiet_exit(e: &anyhow::Error) -> Option<u8> {
    e.downcast_ref::<Quiet>().map(|q| q.0)
}

/// `horace check`: one line on stdout, the plugin exit status.
async fn check(args: &Args, t: &monitor::Thresholds) -> anyhow::Result<()> {
    let asked = async {
        let client = connect(args).await?;
        let report = client.status().await?;
        let snaps = if report.snapshots_enabled && report.zfsd_reachable {
            client.snapshots().await?
        } else {
            Vec::new()
        };
        anyhow::Ok((report, snaps))
    };
    let (level, line) = match asked.await {
        Ok((report, snaps)) => monitor::verdict(&report, &snaps, unix_now(), t),
        Err(e) => (monitor::Level::Unknown, monitor::unknown(&e)),
    };
    let mut stdout = std::io::stdout().lock();
    self::line(&mut stdout, &line)?;
    stdout.flush()?;
    match level {
        monitor::Level::Ok => Ok(()),
        l => Err(Quiet(l as u8).into()),
    }
}

/// `horace metrics`: the exposition on stdout.
async fn metrics(args: &Args) -> anyhow::Result<()> {
    let asked = async {
        let client = connect(args).await?;
        let report = client.status().await?;
        let snaps = if report.snapshots_enabled && report.zfsd_reachable {
            client.snapshots().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        anyhow::Ok((report, snaps))
    };
    let text = match asked.await {
        Ok((report, snaps)) => monitor::exposition(Some(&report), &snaps),
        Err(e) => {
            eprintln!("horace: {}", escape(&format!("{e:#}")));
            monitor::exposition(None, &[])
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether the error is a closed stdout (`horace … | head`), which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error's name for `--json`: the server's or the connection's error
/// ([`ClientError::name`]), `Degraded`, `NotSynced`, or `Error` for the CLI's own.
pub fn error_name(e: &anyhow::Error) -> &'static str {
    if e.is::<Degraded>() {
        return "Degraded";
    }
    if e.is::<NotSynced>() {
        return "NotSynced";
    }
    e.chain()
        .find_map(|c| c.downcast_ref::<ClientError>())
        .map_or("Error", ClientError::name)
}

/// The exit code for an error.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(code) = quiet_exit(e) {
        return code;
    }
    if e.is::<Degraded>() {
        return EXIT_DEGRADED;
    }
    if e.is::<NotSynced>() {
        return EXIT_NOT_SYNCED;
    }
    match e.chain().find_map(|c| c.downcast_ref::<ClientError>()) {
        Some(ClientError::Query(QueryError::NotFound { .. })) => EXIT_NOT_FOUND,
        Some(ClientError::Query(
            QueryError::PermissionDenied { .. } | QueryError::Unauthenticated,
        ))
        | Some(ClientError::Unauthenticated) => EXIT_DENIED,
        Some(ClientError::Connect { .. }) => EXIT_CONNECT,
        Some(ClientError::Query(QueryError::RestoreFailed { .. })) => EXIT_RESTORE_FAILED,
        Some(ClientError::Query(QueryError::TooManyConnections { .. })) => {
            EXIT_TOO_MANY_CONNECTIONS
        }
        _ => EXIT_ERROR,
    }
}

/// Where the query service is: `--socket`, or `--tcp` with `--token-file`.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    Tcp { addr: String, token: String },
}

impl Endpoint {
    pub(crate) fn from_args(args: &Args) -> anyhow::Result<Self> {
        Ok(match &args.tcp {
            Some(addr) => {
                let file = args
                    .token_file
                    .as_ref()
                    .context("--tcp needs --token-file")?;
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("failed to read token file {}", file.display()))?;
                Self::Tcp {
                    addr: addr.clone(),
                    token: text.trim().to_owned(),
                }
            }
            None => Self::Unix(
                args.socket
                    .clone()
                    .unwrap_or_else(horace_client::default_socket),
            ),
        })
    }

    pub(crate) async fn connect(&self) -> Result<Client, ClientError> {
        match self {
            Self::Unix(p) => Client::connect_unix(p).await,
            Self::Tcp { addr, token } => Client::connect_tcp(addr, token).await,
        }
    }
}

async fn connect(args: &Args) -> anyhow::Result<Client> {
    let client = Endpoint::from_args(args)?.connect().await?;
    Ok(client.with_timeout(Duration::from_secs_f64(args.timeout)))
}

/// Runs one command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Command::Mcp(m) = &args.command {
        return mcp::run(&args, m).await;
    }
    if let Command::Check(t) = &args.command {
        return check(&args, t).await;
    }
    if let Command::Metrics = &args.command {
        return metrics(&args).await;
    }
    if let Command::Completions { shell } = &args.command {
        let mut cmd = <Args as clap::CommandFactory>::command();
        clap_complete::generate(*shell, &mut cmd, "horace", &mut std::io::stdout());
        return Ok(());
    }
    let client = connect(&args).await?;
    let mut out = Out::new(args.json);
    match args.command {
        Command::Search(s) => {
            let r = client.search(s.query()?).await?;
            out.search(&r)?;
        }
        Command::Info { file } => out.info(&client.file_info(FileRef::parse(&file)).await?)?,
        Command::Versions { file } => {
            out.versions(&client.versions(FileRef::parse(&file)).await?)?
        }
        Command::Restore { file, version } => {
            let r = client
                .restore_version(FileRef::parse(&file), version)
                .await?;
            out.restore(&r)?;
        }
        Command::Tag { file, add, remove } => {
            anyhow::ensure!(
                !add.is_empty() || !remove.is_empty(),
                "nothing to do: give --add or --remove"
            );
            let u = FileUpdate {
                add_tags: add,
                remove_tags: remove,
                ..Default::default()
            };
            out.info(&client.update_file(FileRef::parse(&file), u).await?)?;
        }
        Command::Update { file, meta } => out.info(
            &client
                .update_file(FileRef::parse(&file), meta.update()?)
                .await?,
        )?,
        Command::Register { path, meta } => {
            out.info(&client.register_file(path, meta.update()?).await?)?
        }
        Command::Collections(c) => collections(&client, &mut out, c).await?,
        Command::Duplicates(d) => out.duplicates(&client.duplicates(d.query()).await?)?,
        Command::Snapshots { plan: false } => out.snapshots(&client.snapshots().await?)?,
        Command::Snapshots { plan: true } => out.snapshot_plan(&client.snapshot_plan().await?)?,
        Command::Status => {
            let report = client.status().await?;
            out.status(&report)?;
            let why = report.degradation();
            if !why.is_empty() {
                return Err(Degraded(why).into());
            }
        }
        Command::Mcp(_) | Command::Check(_) | Command::Metrics | Command::Completions { .. } => {
            unreachable!("served above")
        }
        Command::Sync => {
            let report = client.sync().await?;
            out.sync(&report)?;
            if !report.is_synced() {
                return Err(NotSynced(report.missing.len() as u64 + report.more).into());
            }
        }
    }
    out.flush()?;
    Ok(())
}

async fn collections(client: &Client, out: &mut Out, c: Collections) -> anyhow::Result<()> {
    let refs = |files: Vec<String>| files.iter().map(|f| FileRef::parse(f)).collect::<Vec<_>>();
    match c {
        Collections::List => out.collections(&client.collection_list().await?)?,
        Collections::Create { name, description } => {
            out.collections(&[client.collection_create(name, description).await?])?
        }
        Collections::Members {
            name,
            limit,
            offset,
        } => out.search(&client.collection_members(name, limit, offset).await?)?,
        Collections::Add { name, files } => {
            let n = client.collection_add(name, refs(files)).await?;
            out.count("added", n)?;
        }
        Collections::Remove { name, files } => {
            let n = client.collection_remove(name, refs(files)).await?;
            out.count("removed", n)?;
        }
        Collections::Delete { name } => {
            client.collection_delete(name).await?;
            out.done("deleted")?;
        }
    }
    Ok(())
}

/// Writes a line, passing errors (a broken pipe) up.
pub fn line(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(escape(s).as_bytes())?;
    w.write_all(b"\n")
}

/// `s` with every character a terminal would act on written out as text: C0 controls
/// (ESC, BEL, CR, LF, TAB, …), DEL and C1 controls as `\xNN`, and the bidirectional
/// overrides and isolates as `\u{NNNN}`, so a tenant's file name cannot draw a fake row,
/// move the cursor or recolour the screen. Human output only; `--json` stays exact.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let hostile =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !hostile(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod escape_tests {
    use super::escape;

    #[test]
    fn controls_are_written_out() {
        assert_eq!(escape("plain name.txt"), "plain name.txt");
        assert_eq!(
            escape("a\nb\rc\x1b[31md\x07e\x7ff\u{9b}g\u{202e}h\ti"),
            "a\\x0ab\\x0dc\\x1b[31md\\x07e\\x7ff\\x9bg\\u{202e}h\\x09i"
        );
    }
}
