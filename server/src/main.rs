//! The `diaban` command: run the server, run it with demo data, administer it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use diaban_core::template::SharedChoiceList;
use diaban_core::{PublishError, Role, Template};
use diaban_server::demo;
use diaban_server::domain::pack;
use diaban_server::http::{self, AppState};
use diaban_server::store::{Db, Unit, Wipe};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "diaban", version, about = "Địa bàn server: sync API and review web UI")]
struct Cli {
    /// The database: a SQLite file (created if missing), or a postgres:// URL that several
    /// server processes may share.
    #[arg(long, env = "DIABAN_DB", default_value = "diaban.sqlite", global = true)]
    db: String,
    /// Pin the server's clock (tests, demos): it reads this moment at start and runs on from
    /// there. YYYY-MM-DD (09:00 in Vietnam) or RFC 3339; the system clock when absent.
    #[arg(long, env = diaban_core::clock::CLOCK_ENV, global = true, value_parser = diaban_core::Clock::parse)]
    clock: Option<diaban_core::Clock>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Seed demo data (once) and run the server.
    Demo(ServeArgs),
    /// Administer units, users and templates.
    #[command(subcommand)]
    Admin(Admin),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, env = "DIABAN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Send session cookies without the Secure flag (only for plain-HTTP testing off localhost).
    #[arg(long)]
    insecure_cookies: bool,
    /// The oldest phone library version (major.minor.patch) the API serves; older apps are
    /// told to update before any data moves.
    #[arg(long, env = "DIABAN_MIN_CLIENT_VERSION")]
    min_client_version: Option<diaban_server::http::ClientVersion>,
    /// Take the client's address from the last X-Forwarded-For entry (behind a reverse proxy
    /// that sets it), for the sign-in limits.
    #[arg(long)]
    trust_forwarded_for: bool,
    /// Serve HTTPS with this certificate chain (PEM; an ECDSA P-256 key keeps handshakes small
    /// on 2G), with --tls-key. Without it the server speaks plain HTTP, for a reverse proxy in
    /// front (docs/mobile.md).
    #[arg(long, env = "DIABAN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "DIABAN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Close a connection after this many seconds without a byte either way (above the
    /// longest watch, 30 s).
    #[arg(long, env = "DIABAN_IDLE_TIMEOUT", default_value_t = diaban_server::http::idle::DEFAULT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_timeout: u64,
}

impl ServeArgs {
    fn tls(&self) -> anyhow::Result<Option<rustls::ServerConfig>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(diaban_server::http::tls::server_config(cert, key)?)),
            _ => Ok(None),
        }
    }

    fn state(&self, db: Db) -> AppState {
        AppState {
            min_client: self.min_client_version,
            trust_forwarded_for: self.trust_forwarded_for,
            ..AppState::new(db, !self.insecure_cookies)
        }
    }
}

#[derive(Subcommand)]
enum Admin {
    /// Create or rename an administrative unit.
    CreateUnit {
        /// Code per QĐ 19/2025/QĐ-TTg, e.g. 01 (province) or 00004 (commune).
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// province, commune, village or district.
        #[arg(long)]
        level: String,
        #[arg(long)]
        parent: Option<String>,
    },
    /// Create a user, or reset an existing user's password, role and unit.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long, env = "DIABAN_PASSWORD")]
        password: String,
        /// field_officer, commune_lead, reviewer or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Move a user to another unit, or change their role or name; their phones follow at the
    /// next sync (records of the old unit leave the phone, those of the new one arrive).
    UpdateUser {
        #[arg(long)]
        username: String,
        /// field_officer, commune_lead, reviewer or admin.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List registered devices.
    ListDevices,
    /// Revoke a lost phone (by device id) or every device of a user: cut off at its next sync.
    RevokeDevice {
        #[arg(long, required_unless_present = "user")]
        id: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    /// Take a device out of service: its unsent changes are taken one last time, then it wipes
    /// its store and confirms.
    DeactivateDevice {
        #[arg(long)]
        id: String,
    },
    /// Report a device lost or stolen: nothing more is taken from it; it wipes its store at
    /// its next contact and confirms.
    ReportStolen {
        #[arg(long)]
        id: String,
    },
    /// Grant a user a restricted template (e.g. tips from informants).
    GrantTemplate {
        #[arg(long)]
        user: String,
        #[arg(long)]
        template: String,
    },
    /// Take a restricted template back from a user; its records leave their phones.
    RevokeTemplate {
        #[arg(long)]
        user: String,
        #[arg(long)]
        template: String,
    },
    /// Import administrative units from a CSV file (see server/data/README.md).
    ImportUnits { file: PathBuf },
    /// Publish a template file (JSON), after every publication check.
    PublishTemplate { file: PathBuf },
    /// Create or replace a choice list shared between templates (JSON: name, choices).
    PublishChoices { file: PathBuf },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,automerge=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut db = Db::open(&cli.db).await?;
    if let Some(clock) = cli.clock {
        db.clock = clock;
        tracing::warn!(today = %diaban_core::clock::iso(clock.today()), "the clock is pinned");
    }
    match cli.command {
        Command::Serve(args) => {
            let tls = args.tls()?;
            diaban_server::domain::units::import_national_if_empty(&db).await?;
            pack::publish(&db).await?;
            db.listen().await?;
            http::serve(args.state(db), args.listen, tls, Duration::from_secs(args.idle_timeout)).await
        }
        Command::Demo(args) => {
            let tls = args.tls()?;
            let seeded = demo::seed(&db).await?;
            pack::publish(&db).await?;
            if seeded {
                println!("Demo data created in {}.", cli.db);
            } else {
                let on = demo::seeded_on(&db).await?.unwrap_or_else(|| "an earlier day".into());
                let today = diaban_core::clock::iso(db.clock.today());
                println!("Demo data already present in {}, dated from {on}.", cli.db);
                if on != today {
                    println!(
                        "Its reminders and reporting periods count from that day: delete the file for a demo dated {today}."
                    );
                }
            }
            println!("Open http://localhost:{}/ and sign in as:", args.listen.port());
            for (user, password, name, role, unit) in demo::DEMO_USERS {
                println!("  {user:<16} {password:<16} {name} ({}, unit {unit})", role.as_str());
            }
            db.listen().await?;
            http::serve(args.state(db), args.listen, tls, Duration::from_secs(args.idle_timeout)).await
        }
        Command::Admin(admin) => run_admin(&db, admin).await,
    }
}

async fn run_admin(db: &Db, admin: Admin) -> anyhow::Result<()> {
    match admin {
        Admin::CreateUnit { code, name, level, parent } => {
            if !["province", "commune", "village", "district"].contains(&level.as_str()) {
                bail!("level must be province, commune, village or district");
            }
            db.create_unit(&Unit { code: code.clone(), name, level, parent_code: parent }).await?;
            println!("unit {code} saved");
        }
        Admin::CreateUser { username, password, role, unit, name } => {
            let role = Role::parse(&role).context("role must be field_officer, commune_lead, reviewer or admin")?;
            db.create_user(&username, name.as_deref().unwrap_or(&username), &password, role, &unit).await?;
            println!("user {username} saved");
        }
        Admin::UpdateUser { username, role, unit, name } => {
            let role = match role {
                Some(role) => {
                    Some(Role::parse(&role).context("role must be field_officer, commune_lead, reviewer or admin")?)
                }
                None => None,
            };
            db.update_user(&username, role, unit.as_deref(), name.as_deref()).await?;
            db.audit(None, "update_user", &format!("{username} role={role:?} unit={unit:?} name={name:?}")).await?;
            println!("user {username} updated");
        }
        Admin::RevokeTemplate { user, template } => {
            if db.revoke_template(&user, &template).await? {
                db.audit(None, "revoke_template", &format!("{user} {template}")).await?;
                println!("{user} may no longer read {template}");
            } else {
                println!("{user} did not hold {template}");
            }
        }
        Admin::PublishTemplate { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let template: Template =
                serde_json::from_str(&text).map_err(|e| PublishError::Parse(e.to_string())).context("template file")?;
            let (new, template) = db.publish_template(template).await?;
            println!(
                "template {} version {} {}",
                template.id,
                template.version,
                if new { "published" } else { "was already published" }
            );
        }
        Admin::ListDevices => {
            for d in db.devices().await? {
                let state = match (d.wipe, d.wipe_confirmed_at, d.revoked_at) {
                    (Some(_), Some(_), _) => "wiped",
                    (Some(w), None, _) => w.as_str(),
                    (None, _, Some(_)) => "revoked",
                    (None, _, None) => "active",
                };
                println!("{}  {:<20} {:<24} {state}", d.id, d.username, d.name);
            }
        }
        Admin::RevokeDevice { id, user } => {
            let n = db.revoke_devices(id.as_deref(), user.as_deref()).await?;
            db.audit(None, "revoke_device", &format!("{id:?} {user:?}")).await?;
            println!("{n} device(s) revoked");
        }
        Admin::DeactivateDevice { id: ref device } | Admin::ReportStolen { id: ref device } => {
            let (wipe, what) = match &admin {
                Admin::DeactivateDevice { .. } => (Wipe::Deactivated, "deactivated"),
                _ => (Wipe::Stolen, "reported stolen"),
            };
            let id = device.clone();
            if !db.order_wipe(&id, wipe).await? {
                bail!("no device {id} in use");
            }
            db.audit(None, &format!("device_{}", wipe.as_str()), &id).await?;
            println!("device {id} {what}: it wipes its store at its next contact");
        }
        Admin::GrantTemplate { user, template } => {
            db.grant_template(&user, &template).await?;
            db.audit(None, "grant_template", &format!("{user} {template}")).await?;
            println!("{user} may now read {template}");
        }
        Admin::ImportUnits { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let n = diaban_server::domain::units::import(db, &text).await?;
            println!("{n} units imported");
        }
        Admin::PublishChoices { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let list: SharedChoiceList = serde_json::from_str(&text).context("choice list file")?;
            db.publish_choice_list(&list).await?;
            println!("shared choice list {} saved ({} choices)", list.name, list.choices.len());
        }
    }
    Ok(())
}
