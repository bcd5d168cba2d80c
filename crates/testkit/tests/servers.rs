//! The test kit against real servers: what it promises about starting, crashing,
//! freezing and cleaning up PostgreSQL, nats-server and service processes.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use microcosm_testkit::{ManagedProcess, Nats, Postgres, ServiceKind, free_port};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, Uid, User};
use sqlx::{Connection as _, PgConnection};

type TestResult = anyhow::Result<()>;

// ---------------------------------------------------------------------------------
// ManagedProcess
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_process_pauses_resumes_and_terminates() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut sleeper = sleep_process(dir.path().join("sleep.log"))?;

    sleeper.pause()?;
    wait_for_state(sleeper.pid(), 'T').await;
    sleeper.resume()?;
    wait_for_state(sleeper.pid(), 'S').await;

    let status = sleeper.terminate(Duration::from_secs(5)).await?;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(Signal::SIGTERM as i32)
    );
    assert!(!sleeper.is_running());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_process_log_tail_holds_the_last_lines_of_output() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new("sh");
    command.args(["-c", "seq 1 100; echo oops >&2"]);
    let mut counter = ManagedProcess::spawn(command, dir.path().join("seq.log"))?;

    let status = counter.wait_for_exit(Duration::from_secs(5)).await?;

    assert!(status.success());
    assert_eq!(counter.log_tail(3), "99\n100\noops");
    assert!(counter.diagnostics().contains("seq 1 100"));
    Ok(())
}

/// The kernel, not `Drop`, kills the child here: this is what protects the machine
/// when a test process is SIGKILLed. Under root the child also switches to the
/// `postgres` user first, as PostgreSQL does, which must not clear the death signal.
#[test]
fn child_is_killed_when_the_thread_that_spawned_it_exits() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("orphan.log");
    let pid = std::thread::spawn(move || -> anyhow::Result<u32> {
        let mut command = Command::new("sleep");
        command.arg("30");
        if Uid::effective().is_root() {
            let user = User::from_name("postgres")?.expect("a postgres user");
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        let orphan = ManagedProcess::spawn(command, log)?;
        let pid = orphan.pid();
        // No Drop: only the parent-death signal can end it now.
        std::mem::forget(orphan);
        Ok(pid)
    })
    .join()
    .expect("the spawning thread")?;

    let pid = Pid::from_raw(pid as i32);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::StillAlive if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            status => break status,
        }
    };
    assert_eq!(status, WaitStatus::Signaled(pid, Signal::SIGKILL, false));
    Ok(())
}

// ---------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_role_reaches_its_own_database_and_no_other() -> TestResult {
    let postgres = Postgres::start().await?;
    let order = ServiceKind::Order.database();
    let billing = ServiceKind::Billing.database();
    postgres.provision(&order).await?;
    postgres.provision(&order).await?; // a second run changes nothing
    postgres.provision(&billing).await?;

    // The owner runs the migrations: it may create tables ...
    let mut as_owner = PgConnection::connect(&postgres.owner_url(&order)).await?;
    let (database, user): (String, String) =
        sqlx::query_as("SELECT current_database()::text, current_user::text")
            .fetch_one(&mut as_owner)
            .await?;
    assert_eq!(
        (database, user),
        (order.database.clone(), order.role.clone())
    );
    sqlx::query("CREATE TABLE orders (id bigint PRIMARY KEY)")
        .execute(&mut as_owner)
        .await?;
    // ... and the runtime role the service serves with may use their rows, not more.
    let mut as_service = PgConnection::connect(&postgres.service_url(&order)).await?;
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut as_service)
        .await?;
    assert_eq!(user, order.app_role);
    sqlx::query("INSERT INTO orders VALUES (1)")
        .execute(&mut as_service)
        .await?;
    let refused = sqlx::query("DROP TABLE orders")
        .execute(&mut as_service)
        .await
        .expect_err("the runtime role may not drop a table");
    assert!(refused.to_string().contains("must be owner"), "{refused}");

    let billing_into_order = format!(
        "postgres://{}:{}@127.0.0.1:{}/{}",
        billing.role,
        billing.password,
        postgres.port(),
        order.database
    );
    let refused = PgConnection::connect(&billing_into_order)
        .await
        .expect_err("billing's role must not connect to order's database");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_rows_survive_a_postgres_crash_and_restart() -> TestResult {
    let mut postgres = Postgres::start().await?;
    let url = postgres.superuser_url("postgres");
    let mut connection = PgConnection::connect(&url).await?;
    sqlx::query("CREATE TABLE ledger (entry text NOT NULL)")
        .execute(&mut connection)
        .await?;
    sqlx::query("INSERT INTO ledger VALUES ('committed before the crash')")
        .execute(&mut connection)
        .await?;
    let port = postgres.port();

    postgres.kill().await?;
    assert_eq!(postgres.pid(), None);
    assert!(PgConnection::connect(&url).await.is_err());
    postgres.restart().await?;

    assert_eq!(postgres.port(), port);
    let mut connection = PgConnection::connect(&url).await?;
    let entries: Vec<String> = sqlx::query_scalar("SELECT entry FROM ledger")
        .fetch_all(&mut connection)
        .await?;
    assert_eq!(entries, ["committed before the crash"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_postgres_answers_a_waiting_query_once_resumed() -> TestResult {
    let mut postgres = Postgres::start().await?;
    let mut connection = PgConnection::connect(&postgres.superuser_url("postgres")).await?;

    postgres.pause()?;
    let mut query = tokio::spawn(async move {
        sqlx::query_scalar::<_, i32>("SELECT 42")
            .fetch_one(&mut connection)
            .await
    });
    let while_paused = tokio::time::timeout(Duration::from_millis(500), &mut query).await;
    assert!(while_paused.is_err(), "a paused server must not answer");
    postgres.resume()?;

    let answer = tokio::time::timeout(Duration::from_secs(10), query).await???;
    assert_eq!(answer, 42);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_in_a_persistent_dir_keeps_its_data_between_runs() -> TestResult {
    let parent = tempfile::tempdir()?;
    // Under root the server runs as `postgres`, which must be able to enter the parent.
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755))?;
    let dir = parent.path().join("postgres");

    let first_run = Postgres::start_in(dir.clone(), free_port()?).await?;
    let mut connection = PgConnection::connect(&first_run.superuser_url("postgres")).await?;
    sqlx::query("CREATE TABLE kept (id int)")
        .execute(&mut connection)
        .await?;
    sqlx::query("INSERT INTO kept VALUES (7)")
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    drop(first_run);
    assert!(dir.join("data").join("PG_VERSION").is_file());

    let second_run = Postgres::start_in(dir.clone(), free_port()?).await?;
    let mut connection = PgConnection::connect(&second_run.superuser_url("postgres")).await?;
    let kept: i32 = sqlx::query_scalar("SELECT id FROM kept")
        .fetch_one(&mut connection)
        .await?;
    assert_eq!(kept, 7);
    let initdb_runs = std::fs::read_to_string(dir.join("initdb.log"))?
        .matches("--- starting")
        .count();
    assert_eq!(initdb_runs, 1, "initdb must not run on an existing cluster");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_under_a_directory_closed_to_its_user_fails_with_advice() -> TestResult {
    if !Uid::effective().is_root() {
        return Ok(()); // Only root switches to the `postgres` user.
    }
    let closed = tempfile::tempdir()?;
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700))?;
    let error = Postgres::start_in(closed.path().join("postgres"), free_port()?)
        .await
        .expect_err("the postgres user cannot enter a 0700 root directory");
    assert!(format!("{error:#}").contains("chmod o+x"), "{error:#}");
    Ok(())
}

// ---------------------------------------------------------------------------------
// NATS
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_streams_and_messages_survive_restart_and_crash() -> TestResult {
    let mut nats = Nats::start().await?;
    let stream = jetstream::stream::Config {
        name: "ORDERS".to_owned(),
        subjects: vec!["orders.>".to_owned()],
        ..Default::default()
    };
    {
        let js = jetstream::new(nats.client().await?);
        js.create_stream(stream).await?;
        js.publish("orders.placed", "first".into()).await?.await?;
    }

    nats.restart().await?;
    {
        let js = jetstream::new(nats.client().await?);
        let mut orders = js.get_stream("ORDERS").await?;
        assert_eq!(orders.info().await?.state.messages, 1);
        js.publish("orders.placed", "second".into()).await?.await?;
    }

    nats.kill()?;
    assert_eq!(nats.pid(), None);
    nats.restart().await?;
    let js = jetstream::new(nats.client().await?);
    let mut orders = js.get_stream("ORDERS").await?;
    assert_eq!(orders.info().await?.state.messages, 2);
    Ok(())
}

// ---------------------------------------------------------------------------------
// Teardown
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_servers_leaves_no_process_and_no_directory() -> TestResult {
    let (postgres, nats) = tokio::try_join!(Postgres::start(), Nats::start())?;
    // An open session gives PostgreSQL a backend process that must die too.
    let session = PgConnection::connect(&postgres.superuser_url("postgres")).await?;
    let postgres_pid = postgres.pid().expect("a running postgres");
    let nats_pid = nats.pid().expect("a running nats-server");
    let dirs = [postgres.dir().to_path_buf(), nats.dir().to_path_buf()];
    let postgres_children = descendants(postgres_pid);
    assert!(
        postgres_children.len() > 1,
        "backends and helpers run beside the postmaster"
    );

    drop(postgres);
    drop(nats);

    for pid in [postgres_pid, nats_pid] {
        assert_eq!(
            nix::sys::signal::kill(Pid::from_raw(pid as i32), None),
            Err(nix::errno::Errno::ESRCH),
            "process {pid} is still there"
        );
    }
    let survivors: Vec<u32> = postgres_children
        .into_iter()
        .filter(|&pid| is_alive(pid))
        .collect();

    assert_eq!(
        survivors,
        Vec::<u32>::new(),
        "PostgreSQL processes outlived the handle"
    );
    for dir in dirs {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
    drop(session);
    Ok(())
}

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn sleep_process(log: PathBuf) -> anyhow::Result<ManagedProcess> {
    let mut command = Command::new("sleep");
    command.arg("30");
    ManagedProcess::spawn(command, log)
}

/// The state letter of a process in /proc (`S` sleeping, `T` stopped, `Z` zombie).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields follow it.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

async fn wait_for_state(pid: u32, wanted: char) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_state(pid) != Some(wanted) {
        assert!(
            Instant::now() < deadline,
            "process {pid} never reached state {wanted} (is {:?})",
            process_state(pid)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `pid` is a living process. Zombies do not count: orphaned children are
/// reaped by whatever runs as pid 1, which in a container may never do it.
fn is_alive(pid: u32) -> bool {
    process_state(pid).is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

/// Every process below `root`, found through the parent links in /proc.
fn descendants(root: u32) -> Vec<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(all.iter().filter(|&&pid| parent_of(pid) == Some(parent)));
        index += 1;
    }
    found.split_off(1)
}

// ---------------------------------------------------------------------------------
// FaultProxy
// ---------------------------------------------------------------------------------

/// An echo server on a free loopback port: writes back whatever it reads.
async fn echo_server() -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    Ok(addr)
}

async fn round_trip(
    stream: &mut tokio::net::TcpStream,
    payload: &[u8],
) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(payload).await?;
    let mut echoed = vec![0; payload.len()];
    stream.read_exact(&mut echoed).await?;
    Ok(echoed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_proxy_relays_delays_cuts_and_partitions() -> TestResult {
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpStream;

    let proxy = microcosm_testkit::FaultProxy::start(echo_server().await?).await?;
    let mut client = TcpStream::connect(proxy.addr()).await?;
    let payload: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        round_trip(&mut client, &payload).await?,
        payload,
        "relayed intact"
    );
    assert_eq!(proxy.open_connections(), 1);

    // Latency applies to each direction: a round trip takes at least twice as long.
    proxy.set_latency(Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(round_trip(&mut client, b"ping").await?, b"ping");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    proxy.set_latency(Duration::ZERO);

    // A cut resets the open connection; a new one works.
    assert_eq!(proxy.cut_connections(), 1);
    let mut buffer = [0; 1];
    let after_cut = client.read(&mut buffer).await;
    assert!(
        matches!(&after_cut, Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset),
        "the client sees a reset, not an orderly close: {after_cut:?}"
    );
    let mut client = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut client, b"again").await?, b"again");

    // A partition cuts it and refuses new connections until healed.
    assert_eq!(proxy.partition(), 1);
    // The reset may reach the client while it connects, or on its first exchange.
    let refused = match TcpStream::connect(proxy.addr()).await {
        Ok(mut stream) => round_trip(&mut stream, b"x").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "refused while partitioned");
    proxy.heal();
    let mut client = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut client, b"healed").await?, b"healed");

    let stats = proxy.stats();
    assert_eq!((stats.relayed, stats.cut), (3, 2), "{stats:?}");
    assert!(stats.refused >= 1, "{stats:?}");
    Ok(())
}
