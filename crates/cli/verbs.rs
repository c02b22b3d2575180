//! The verbs: open the store, call the engine, render.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use futures::StreamExt;
use grantflow_engine::audit::{self, Checkpoint};
use grantflow_engine::query::{self, AsOf, Subject};
use grantflow_engine::signing::{self, CheckpointSigner, SignedCheckpoint, TrustedKey};
use grantflow_engine::{transfer, Submission};
use grantflow_relay::RelayOptions;
use grantflow_store::EventStore;
use grantflow_webhooks::{DeliveryOptions, NewSubscription, WebhookError};
use serde_json::Value;
use std::time::Duration;

use crate::args::{
    Cli, FundAction, GrantAction, KeyAction, RelayTarget, ReportAction, TokenAction, Verb,
    WebhookAction,
};
use crate::open::{open_engine, open_store, open_webhooks, progress_bar, Access};
use crate::outcome::Outcome;
use crate::stdout::{out, outln};
use crate::{demo, exec, render};

/// `grantflow <command> --flag value ...`
pub async fn one_command(
    data: &Path,
    actor: Option<String>,
    body: Value,
    json: bool,
) -> anyhow::Result<Outcome> {
    let engine = open_engine(data, Access::Create).await?;
    let outcome = engine.submit(Submission::cli(body, actor)).await;
    engine.close().await?;
    let outcome = outcome?;
    if json {
        outln!("{}", outcome.to_json())?;
    } else {
        outln!("{}", render::outcome(&outcome))?;
    }
    Ok(if outcome.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// Every other verb.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let data = cli.data.as_path();
    match cli.verb {
        Verb::Exec { file } => exec::run(data, cli.actor, file).await,
        Verb::Grant { action } => grant(data, action).await,
        Verb::Fund { action } => fund(data, action).await,
        Verb::Report { action } => report(data, action).await,
        Verb::Audit { id, json, csv } => audit_trail(data, &id, json, csv).await,
        Verb::Events {
            from,
            stream,
            limit,
            follow,
        } => events(data, from, stream, limit, follow).await,
        Verb::Verify {
            checkpoint,
            export,
            trust,
            json,
        } => {
            let files = VerifyFiles {
                checkpoint: checkpoint.as_deref(),
                export: export.as_deref(),
                trust: trust.as_deref(),
            };
            verify(data, files, json).await
        }
        Verb::Checkpoint { sign } => {
            let signer = match sign {
                Some(path) => Some(CheckpointSigner::load(&path)?),
                None => None,
            };
            let store = open_store(data, Access::ReadOnly).await?;
            let checkpoint = Checkpoint::of(store.as_ref()).await?;
            let line = match signer {
                Some(signer) => serde_json::to_string(&signer.sign(checkpoint))?,
                None => serde_json::to_string(&checkpoint)?,
            };
            outln!("{line}")?;
            Ok(Outcome::Success)
        }
        Verb::Key {
            action: KeyAction::Generate { out },
        } => {
            let public = signing::generate(&out)?;
            outln!(
                "key {}: private key in {} (mode 0600, keep it secret), public key in {}",
                public.key_id(),
                out.display(),
                signing::public_path(&out).display()
            )?;
            Ok(Outcome::Success)
        }
        Verb::Replay { json } => replay(data, json).await,
        Verb::Export {
            format,
            output,
            at,
            as_of,
            grants,
            reporting_org,
        } => {
            let iati = IatiArgs {
                at,
                as_of,
                grants,
                reporting_org,
            };
            export(data, &format, output.as_deref(), iati).await
        }
        Verb::Import { file, checkpoint } => import(data, &file, checkpoint.as_deref()).await,
        Verb::Demo { json } => demo::run(data, json).await,
        Verb::Serve {
            addr,
            signing_key,
            relay_nats,
            relay_stream,
            relay_subject_prefix,
            webhook_max_failures,
            webhook_retry_base_ms,
            webhook_timeout_ms,
        } => {
            let relay = relay_nats.map(|url| RelayOptions {
                stream: relay_stream,
                subject_prefix: relay_subject_prefix,
                retry_initial_connect: true,
                ..RelayOptions::new(url)
            });
            let webhooks = DeliveryOptions {
                max_failures: webhook_max_failures,
                retry_base: Duration::from_millis(webhook_retry_base_ms),
                timeout: Duration::from_millis(webhook_timeout_ms),
                ..DeliveryOptions::default()
            };
            serve(data, addr, signing_key.as_deref(), relay, webhooks).await
        }
        Verb::Relay {
            target:
                RelayTarget::Nats {
                    url,
                    stream,
                    subject_prefix,
                    source,
                },
        } => {
            let options = RelayOptions {
                stream,
                subject_prefix,
                source,
                ..RelayOptions::new(url)
            };
            relay(data, options).await
        }
        Verb::Token { action } => token(data, cli.actor, action),
        Verb::Webhook { action } => webhook(data, action).await,
    }
}

async fn grant(data: &Path, action: GrantAction) -> anyhow::Result<Outcome> {
    let engine = open_engine(data, Access::ReadOnly).await?;
    match action {
        GrantAction::Show {
            id,
            at,
            as_of,
            json,
        } => {
            let as_of = AsOf::from_options(at, as_of.as_deref())?;
            let model = query::subject_as_of(&engine, &Subject::Grant(id.clone()), &as_of).await?;
            let Some(view) = model.world.grant_view(&id) else {
                eprintln!("no grant `{id}`{}", render::as_of_suffix(&as_of));
                return Ok(Outcome::Failed);
            };
            if json {
                outln!("{}", serde_json::to_string_pretty(&view)?)?;
            } else {
                out!("{}", render::grant(&view, &model.world))?;
            }
        }
        GrantAction::List { fund, status, json } => {
            if let Some(status) = &status {
                if grantflow_domain::Status::parse(status).is_none() {
                    return Err(anyhow!(
                        "unknown status `{status}`; one of proposed, approved, active, \
                         suspended, closed, finalized, rejected, cancelled"
                    ));
                }
            }
            let model = engine.snapshot();
            let views: Vec<_> = model
                .world
                .grant_ids()
                .iter()
                .filter_map(|id| model.world.grant_view(id))
                .filter(|view| fund.as_ref().is_none_or(|fund| &view.fund == fund))
                .filter(|view| status.as_ref().is_none_or(|status| &view.status == status))
                .collect();
            if json {
                outln!("{}", serde_json::to_string_pretty(&views)?)?;
            } else {
                out!("{}", render::grant_list(&views))?;
            }
        }
    }
    Ok(Outcome::Success)
}

async fn fund(data: &Path, action: FundAction) -> anyhow::Result<Outcome> {
    let engine = open_engine(data, Access::ReadOnly).await?;
    let FundAction::Show {
        id,
        at,
        as_of,
        json,
    } = action;
    let as_of = AsOf::from_options(at, as_of.as_deref())?;
    let model = query::subject_as_of(&engine, &Subject::Fund(id.clone()), &as_of).await?;
    let Some(view) = model.world.fund_view(&id) else {
        eprintln!("no fund `{id}`{}", render::as_of_suffix(&as_of));
        return Ok(Outcome::Failed);
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&view)?)?;
    } else {
        out!("{}", render::fund(&view))?;
    }
    Ok(Outcome::Success)
}

async fn report(data: &Path, action: ReportAction) -> anyhow::Result<Outcome> {
    let ReportAction::List {
        fund,
        grant,
        overdue_on,
        json,
    } = action;
    let overdue_on = overdue_on
        .map(|text| {
            grantflow_domain::Date::parse(&text).ok_or_else(|| {
                anyhow!("--overdue-on {text:?} is not a real calendar date written YYYY-MM-DD")
            })
        })
        .transpose()?;
    let engine = open_engine(data, Access::ReadOnly).await?;
    let model = engine.snapshot();
    if let Some(fund) = fund
        .as_deref()
        .filter(|fund| model.world.fund(fund).is_none())
    {
        eprintln!("no fund `{fund}`");
        return Ok(Outcome::Failed);
    }
    if let Some(grant) = grant
        .as_deref()
        .filter(|grant| model.world.grant(grant).is_none())
    {
        eprintln!("no grant `{grant}`");
        return Ok(Outcome::Failed);
    }
    let rows = model
        .world
        .report_rows(fund.as_deref(), grant.as_deref(), overdue_on);
    if json {
        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        out!("{}", render::report_list(&rows, overdue_on))?;
    }
    Ok(Outcome::Success)
}

async fn audit_trail(data: &Path, id: &str, json: bool, csv: bool) -> anyhow::Result<Outcome> {
    let engine = open_engine(data, Access::ReadOnly).await?;
    let subject = match engine.with_model(|model| Subject::resolve(&model.world, id)) {
        Ok(subject) => subject,
        Err(error) => {
            eprintln!("{error}");
            return Ok(Outcome::Failed);
        }
    };
    let entries = query::audit_trail(&engine, &subject).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&entries)?)?;
    } else if csv {
        out!("{}", render::audit_csv(&entries))?;
    } else {
        out!("{}", render::audit(&subject, &entries))?;
    }
    Ok(Outcome::Success)
}

async fn events(
    data: &Path,
    from: u64,
    stream: Option<String>,
    limit: Option<u64>,
    follow: bool,
) -> anyhow::Result<Outcome> {
    let store = open_store(data, Access::ReadOnly).await?;
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if follow {
        let mut events = grantflow_store::subscription::subscribe(store, from.max(1), stream);
        while remaining > 0 {
            let Some(event) = events.next().await else {
                break;
            };
            writeln!(out, "{}", event?.to_line())?;
            out.flush()?;
            remaining -= 1;
        }
        return Ok(Outcome::Success);
    }
    let head = store.head().await?.position;
    let mut next = from.max(1);
    while next <= head && remaining > 0 {
        let want = (head + 1 - next).min(grantflow_engine::FOLD_PAGE_EVENTS as u64) as usize;
        let page = store.read(next, want).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            next = event.position + 1;
            if stream
                .as_ref()
                .is_some_and(|stream| &event.stream != stream)
            {
                continue;
            }
            writeln!(out, "{}", event.to_line())?;
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Success)
}

/// The files `verify` reads besides the store.
struct VerifyFiles<'a> {
    checkpoint: Option<&'a Path>,
    export: Option<&'a Path>,
    trust: Option<&'a Path>,
}

async fn verify(data: &Path, files: VerifyFiles<'_>, json: bool) -> anyhow::Result<Outcome> {
    let VerifyFiles {
        checkpoint,
        export,
        trust,
    } = files;
    let checkpoint = match checkpoint {
        Some(path) => Some(read_checkpoint(path)?),
        None => None,
    };
    if let (Some(trust), Some(signed)) = (trust, &checkpoint) {
        let key = TrustedKey::load(trust)?;
        if let Err(error) = key.check(signed) {
            return signature_refused(signed, &error, json);
        }
    }
    let checkpoint = checkpoint.map(|signed| signed.checkpoint);
    let report = match export {
        Some(file) => {
            let (checker, failure) = transfer::verify_file(file, checkpoint.clone())?;
            let events = checker.events();
            let head = checker.last().clone();
            let failure = failure.or_else(|| checker.finish().err());
            audit::VerifyReport {
                events,
                head,
                failure,
                checkpoint_checked: checkpoint.is_some(),
            }
        }
        None => {
            let store = match open_store(data, Access::ReadOnly).await {
                Ok(store) => store,
                Err(error) => return refused_store(error, json),
            };
            let bar = progress_bar("verifying");
            let report = audit::verify(store.as_ref(), checkpoint, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            report
        }
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", render::verify(&report, export.is_some()))?;
    }
    Ok(if report.ok() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// `verify` on a store that refuses to open: a damaged log is a failed check (exit 1,
/// naming the first bad position); anything else (no store, I/O) stays an error (exit 2).
fn refused_store(error: anyhow::Error, json: bool) -> anyhow::Result<Outcome> {
    let corrupt = error.chain().find_map(|cause| match cause.downcast_ref() {
        Some(grantflow_store::StoreError::Corrupt { position, detail }) => {
            Some((*position, detail.clone()))
        }
        _ => None,
    });
    let Some((position, detail)) = corrupt else {
        return Err(error);
    };
    let refusal = format!("the store refuses to open: {error:#}");
    failed_at(position, &detail, Some(&refusal), json)
}

/// A verification that failed before a report: `{"ok": false, "failure": ...}` with
/// `--json`, else `FAILED at position P: DETAIL` (and `more` on the next line); exit 1.
fn failed_at(
    position: u64,
    detail: &str,
    more: Option<&str>,
    json: bool,
) -> anyhow::Result<Outcome> {
    if json {
        let report = serde_json::json!({
            "ok": false,
            "failure": {"position": position, "detail": detail},
        });
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!("FAILED at position {position}: {detail}")?;
        if let Some(more) = more {
            outln!("{more}")?;
        }
    }
    Ok(Outcome::Failed)
}

/// `verify --trust` on a checkpoint whose signature does not hold: exit 1, naming why.
fn signature_refused(
    signed: &SignedCheckpoint,
    error: &signing::SigningError,
    json: bool,
) -> anyhow::Result<Outcome> {
    let detail = format!("the checkpoint is not trusted: {error}");
    failed_at(signed.checkpoint.position, &detail, None, json)
}

fn read_checkpoint(path: &Path) -> anyhow::Result<SignedCheckpoint> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
    let line = text
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line).with_context(|| {
        format!(
            "{} is not a checkpoint (a JSON line with position, hash and recorded_at)",
            path.display()
        )
    })
}

async fn replay(data: &Path, json: bool) -> anyhow::Result<Outcome> {
    let store = open_store(data, Access::Existing).await?;
    let bar = progress_bar("replaying");
    let replayed = audit::replay(store.as_ref(), &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    store.close().await?;
    let report = match replayed {
        Ok((_, report)) => report,
        Err(grantflow_engine::EngineError::Corrupt { position, detail }) => {
            eprintln!(
                "replay refused at position {position}: {detail}\nthe projections were not rebuilt"
            );
            return Ok(Outcome::Failed);
        }
        Err(error) => return Err(error.into()),
    };
    if json {
        outln!("{}", serde_json::to_string(&report)?)?;
    } else {
        outln!(
            "replayed {} events in {:.3} s ({:.0} events/s); projections rebuilt from the log",
            report.events,
            report.seconds,
            report.events_per_second
        )?;
    }
    Ok(Outcome::Success)
}

/// The IATI export's options from the command line.
struct IatiArgs {
    at: Option<u64>,
    as_of: Option<String>,
    grants: Vec<String>,
    reporting_org: Option<String>,
}

async fn export(
    data: &Path,
    format: &str,
    output: Option<&Path>,
    iati: IatiArgs,
) -> anyhow::Result<Outcome> {
    if !matches!(format, "jsonl" | "iati" | "iati-org" | "csv") {
        return Err(anyhow!(
            "unknown export format `{format}`; one of jsonl, iati, iati-org, csv"
        ));
    }
    let store = open_store(data, Access::ReadOnly).await?;
    let mut out: Box<dyn Write + Send> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let result = match format {
        "jsonl" => {
            let bar = progress_bar("exporting");
            let progress = |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let written = transfer::export_jsonl(store.as_ref(), &mut out, &progress).await;
            bar.finish_and_clear();
            written
                .map(|_| Outcome::Success)
                .map_err(anyhow::Error::from)
        }
        "csv" => grantflow_export::write_events_csv(store.as_ref(), &mut *out)
            .await
            .map(|_| Outcome::Success)
            .map_err(anyhow::Error::from),
        _ => export_iati(store.as_ref(), format, iati, &mut *out).await,
    };
    out.flush()?;
    result
}

/// `iati`: the activities file; `iati-org`: the organisation file of the same publisher.
async fn export_iati(
    store: &dyn EventStore,
    format: &str,
    iati: IatiArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Outcome> {
    use grantflow_export::{ExportError, IatiOptions};
    let options = IatiOptions {
        as_of: AsOf::from_options(iati.at, iati.as_of.as_deref())?,
        grants: iati.grants,
        reporting_org: iati.reporting_org,
        generated_at: None,
    };
    let written = if format == "iati-org" {
        grantflow_export::write_iati_organisation(store, &options, out)
            .await
            .map(|summary| {
                format!(
                    "exported organisation {} ({} fund(s)): {} yearly budget(s), {} yearly expenditure(s) as of position {}",
                    summary.organisation,
                    summary.funds,
                    summary.budgets,
                    summary.expenditures,
                    summary.position
                )
            })
    } else {
        grantflow_export::write_iati(store, &options, out)
            .await
            .map(|summary| {
                format!(
                    "exported {} fund(s), {} grant(s), {} transaction(s) as of position {}",
                    summary.funds, summary.grants, summary.transactions, summary.position
                )
            })
    };
    match written {
        Ok(report) => {
            eprintln!("{report}");
            Ok(Outcome::Success)
        }
        Err(
            error @ (ExportError::UnknownGrant(_)
            | ExportError::NothingToExport { .. }
            | ExportError::BadOption(_)),
        ) => {
            eprintln!("{error}");
            Ok(Outcome::Failed)
        }
        Err(error) => Err(error.into()),
    }
}

async fn import(data: &Path, file: &Path, checkpoint: Option<&Path>) -> anyhow::Result<Outcome> {
    if !file.exists() {
        return Err(anyhow!("cannot read {}: no such file", file.display()));
    }
    let checkpoint = match checkpoint {
        Some(path) => Some(read_checkpoint(path)?.checkpoint),
        None => None,
    };
    let store = open_store(data, Access::Create).await?;
    let bar = progress_bar("importing");
    let result = transfer::import_file(store.as_ref(), file, checkpoint, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    store.close().await?;
    match result {
        Ok(events) => {
            let checkpoint = Checkpoint::of(store.as_ref()).await?;
            outln!(
                "imported {events} events; head position {} hash {}",
                checkpoint.position,
                checkpoint.hash
            )?;
            Ok(Outcome::Success)
        }
        Err(error) => {
            eprintln!("import refused: {error}");
            Ok(Outcome::Failed)
        }
    }
}

async fn serve(
    data: &Path,
    addr: std::net::SocketAddr,
    signing_key: Option<&Path>,
    relay: Option<RelayOptions>,
    webhooks: DeliveryOptions,
) -> anyhow::Result<Outcome> {
    webhooks.check()?;
    let signer = match signing_key {
        Some(path) => Some(CheckpointSigner::load(path)?),
        None => None,
    };
    if let Some(options) = &relay {
        options.check()?;
    }
    // The token registry is checked (owner, mode) before the store opens.
    grantflow_server::Tokens::load(data)?;
    let engine = Arc::new(open_engine(data, Access::Create).await?);
    // A fund's figures as of a past moment start from the checkpoint before it.
    engine.keep_fund_checkpoints().await;
    let mut state = grantflow_server::AppState::new(engine.clone(), data.to_path_buf());
    if let Some(signer) = signer {
        tracing::info!(key_id = signer.key_id(), "checkpoints are signed");
        state = state.with_checkpoint_signer(signer);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = relay.map(|options| {
        let store = engine.store().clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let result = grantflow_relay::run(store, &options, until).await;
            if let Err(error) = &result {
                tracing::error!(%error, "the JetStream relay stopped");
            }
            result
        })
    });
    let registry = open_webhooks(data).await?;
    let deliveries = {
        let store = engine.store().clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let result = grantflow_webhooks::run(store, registry, webhooks, until).await;
            if let Err(error) = &result {
                tracing::error!(%error, "webhook deliveries stopped");
            }
        })
    };
    let served = grantflow_server::serve_state(state, addr, shutdown_signal()).await;
    // Whatever ended the server, let the relay confirm what it sent, stop the webhook
    // deliveries (an attempt cut short is made again: at least once), finish the queued
    // batches and close the store.
    let _ = stop.send(true);
    let _ = deliveries.await;
    if let Some(relay) = relay {
        if let Ok(Ok(report)) = relay.await {
            tracing::info!(
                published = report.published,
                last_position = report.last_position,
                "the JetStream relay stopped"
            );
        }
    }
    engine.close().await?;
    served?;
    Ok(Outcome::Success)
}

/// `grantflow relay nats`: follows the store until SIGINT/SIGTERM.
async fn relay(data: &Path, options: RelayOptions) -> anyhow::Result<Outcome> {
    options.check()?;
    let stop = shutdown_signal();
    let store = open_store(data, Access::Existing).await?;
    let report = grantflow_relay::run_with(store.clone(), &options, stop, |last| {
        eprintln!(
            "relaying to the JetStream stream {} at {} from position {}",
            options.stream,
            options.url,
            last + 1
        );
    })
    .await;
    store.close().await?;
    let report = report?;
    eprintln!(
        "relay stopped: {} events published, {} already there, up to position {} (resumed after {})",
        report.published, report.duplicates, report.last_position, report.resumed_after
    );
    Ok(Outcome::Success)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: a signal that arrives while the verb is still
/// starting ends it cleanly too.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        #[cfg(unix)]
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn token(data: &Path, actor: Option<String>, action: TokenAction) -> anyhow::Result<Outcome> {
    use grantflow_server::Tokens;
    match action {
        TokenAction::Add { roles } => {
            let actor = actor.ok_or_else(|| {
                anyhow!("token add needs --actor NAME: the actor recorded on the token's commands")
            })?;
            let (info, token) = Tokens::add(data, &actor, &roles)?;
            let roles: Vec<&str> = info.roles.iter().map(|role| role.as_str()).collect();
            outln!(
                "token {} for actor {} with roles {} (shown once; keep it secret):",
                info.id,
                info.actor,
                roles.join(",")
            )?;
            outln!("{token}")?;
        }
        TokenAction::List { json } => {
            let tokens = Tokens::list(data)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&tokens)?)?;
            } else {
                outln!(
                    "{:<10}{:<24}{:<32}{:<30}state",
                    "id",
                    "actor",
                    "roles",
                    "created_at"
                )?;
                for info in &tokens {
                    let roles: Vec<&str> = info.roles.iter().map(|role| role.as_str()).collect();
                    outln!(
                        "{:<10}{:<24}{:<32}{:<30}{}",
                        info.id,
                        info.actor,
                        roles.join(","),
                        info.created_at,
                        if info.revoked { "revoked" } else { "live" }
                    )?;
                }
            }
        }
        TokenAction::Revoke { id } => match Tokens::revoke(data, &id) {
            Ok(info) => outln!("revoked token {} of {}", info.id, info.actor)?,
            Err(error) => {
                eprintln!("{error}");
                return Ok(Outcome::Failed);
            }
        },
    }
    Ok(Outcome::Success)
}

async fn webhook(data: &Path, action: WebhookAction) -> anyhow::Result<Outcome> {
    let registry = open_webhooks(data).await?;
    // An unknown id is a failed look-up (exit 1); anything else an error (exit 2).
    let unknown = |error: WebhookError| match error {
        WebhookError::UnknownSubscription(_) => {
            eprintln!("{error}");
            Ok(Outcome::Failed)
        }
        error => Err(anyhow::Error::from(error)),
    };
    match action {
        WebhookAction::Add {
            url,
            types,
            fund,
            json,
        } => {
            let new = NewSubscription::new(&url, &types, fund);
            let (added, secret) = registry.add(&new).await?;
            if json {
                let mut value = serde_json::to_value(&added)?;
                value["secret"] = serde_json::Value::String(secret);
                outln!("{value}")?;
                return Ok(Outcome::Success);
            }
            let fund = added
                .fund
                .as_ref()
                .map(|fund| format!(", fund {fund} and its grants"))
                .unwrap_or_default();
            outln!(
                "webhook {} for {} ({}{fund}), from position {}; its signing secret (shown \
                 once; keep it secret):",
                added.id,
                added.url,
                render::webhook_types(&added.types),
                added.start_after + 1
            )?;
            outln!("{secret}")?;
        }
        WebhookAction::List { json } => {
            let subscriptions = registry.list().await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&subscriptions)?)?;
            } else {
                out!("{}", render::webhook_list(&subscriptions))?;
            }
        }
        WebhookAction::Remove { id } => match registry.remove(&id).await {
            Ok(removed) => outln!("removed webhook {} for {}", removed.id, removed.url)?,
            Err(error) => return unknown(error),
        },
        WebhookAction::Enable { id } => match registry.enable(&id).await {
            Ok(enabled) => outln!(
                "enabled webhook {} for {}: deliveries resume after position {}",
                enabled.id,
                enabled.url,
                enabled.cursor
            )?,
            Err(error) => return unknown(error),
        },
        WebhookAction::Deliveries { id, json } => match registry.deliveries(&id).await {
            Ok(attempts) if json => outln!("{}", serde_json::to_string_pretty(&attempts)?)?,
            Ok(attempts) => out!("{}", render::webhook_attempts(&attempts))?,
            Err(error) => return unknown(error),
        },
    }
    Ok(Outcome::Success)
}
