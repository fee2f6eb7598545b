//! `strom user` and `strom acl` end to end: the built binary against a spawned
//! `strom serve` with a SASL_PLAINTEXT listener, the authorizer on and a bootstrap
//! super user. Each step asserts the exact output and exit code; nothing depends on
//! timing.
#![cfg(feature = "tools")]
#![allow(missing_docs)]

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Output};

use support::{run_with_input, spawn_strom_with_config};

/// Who runs a command: user name, password and SASL mechanism.
type Login = (&'static str, &'static str, &'static str);

const ADMIN: Login = ("admin", "admin-secret", "SCRAM-SHA-512");
const BOB: Login = ("bob", "bob-secret", "SCRAM-SHA-256");

const CONFIG: &str = r#"
[[listeners]]
name = "sasl"
address = "127.0.0.1:0"
security_protocol = "SASL_PLAINTEXT"

[sasl]
mechanisms = ["SCRAM-SHA-512", "SCRAM-SHA-256"]

[[users]]
name = "admin"
password = "admin-secret"

[authorizer]
enabled = true
super_users = ["User:admin"]
allow_everyone_if_no_acl_found = false
"#;

/// A secured broker for one test, killed when dropped.
struct Broker {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("strom.toml");
        std::fs::write(&config, CONFIG).expect("write config");
        let (child, addr) = spawn_strom_with_config(&dir.path().join("data"), &config, "sasl");
        Broker {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Runs `strom ARGS` logged in as `who`, with `stdin` as its input.
    fn run(&self, (user, password, mechanism): Login, args: &[&str], stdin: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strom"));
        command
            .args(args)
            .args(["--brokers", &self.addr.to_string(), "--timeout", "10"])
            .args(["-X", "security.protocol=sasl_plaintext"])
            .args(["-X", &format!("sasl.mechanism={mechanism}")])
            .args(["-X", &format!("sasl.username={user}")])
            .args(["-X", &format!("sasl.password={password}")]);
        run_with_input(&mut command, stdin)
    }

    /// Runs `strom ARGS` as `who`, which must succeed; returns its stdout.
    fn ok(&self, who: Login, args: &[&str]) -> String {
        self.ok_with_input(who, args, "")
    }

    /// Runs `strom ARGS` as `who` with input, which must succeed; returns its stdout.
    fn ok_with_input(&self, who: Login, args: &[&str], stdin: &str) -> String {
        let output = self.run(who, args, stdin);
        assert!(
            output.status.success(),
            "strom {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Runs `strom ARGS` as `who` with input, which must exit with 1; returns its
    /// stderr.
    fn fails(&self, who: Login, args: &[&str], stdin: &str) -> String {
        let output = self.run(who, args, stdin);
        assert_eq!(
            output.status.code(),
            Some(1),
            "strom {args:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).expect("utf-8 stderr")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const REFUSED: &str = "strom: 1 record(s) not delivered (0 delivered): Message production \
    error: TopicAuthorizationFailed (Broker: Topic authorization failed)\n";

const ACL_HEADER: &str =
    "RESOURCE-TYPE  RESOURCE  PATTERN  PRINCIPAL  HOST  OPERATION  PERMISSION\n";

#[test]
fn a_user_created_and_granted_by_the_cli_can_write_until_revoked_and_deleted() {
    let broker = Broker::start();

    // The super user creates bob; the password comes from stdin.
    let created = broker.ok_with_input(
        ADMIN,
        &[
            "user",
            "create",
            "bob",
            "--password-stdin",
            "--mechanism",
            "SCRAM-SHA-256",
        ],
        "bob-secret\n",
    );
    assert_eq!(
        created,
        "set the SCRAM-SHA-256 credential of user bob (8192 iterations)\n"
    );
    assert!(!created.contains("bob-secret"));
    assert_eq!(
        broker.ok(ADMIN, &["user", "list"]),
        "USER   MECHANISM      ITERATIONS\n\
         admin  SCRAM-SHA-256  4096\n\
         admin  SCRAM-SHA-512  4096\n\
         bob    SCRAM-SHA-256  8192\n"
    );
    assert_eq!(
        broker.ok(ADMIN, &["user", "list", "bob", "bob"]),
        "USER  MECHANISM      ITERATIONS\nbob   SCRAM-SHA-256  8192\n"
    );

    // Bob logs in, but without ACLs he sees no topic, cannot write, and cannot see
    // or change users.
    broker.ok(ADMIN, &["topic", "create", "orders"]);
    assert_eq!(
        broker.fails(BOB, &["user", "list"], ""),
        "strom: cannot describe users: ClusterAuthorizationFailed (Broker: Cluster \
         authorization failed)\n"
    );
    assert_eq!(
        broker.fails(BOB, &["user", "create", "eve", "--password", "x"], ""),
        "strom: cannot create user eve: ClusterAuthorizationFailed (ALTER on the cluster is \
         needed)\n"
    );
    assert_eq!(broker.ok(BOB, &["topic", "list"]), "TOPIC  PARTITIONS\n");
    assert_eq!(broker.fails(BOB, &["produce", "orders"], "v0\n"), REFUSED);

    // Granted WRITE (which implies DESCRIBE), he can.
    assert_eq!(
        broker.ok(
            ADMIN,
            &[
                "acl",
                "create",
                "--principal",
                "User:bob",
                "--operation",
                "write",
                "--topic",
                "orders"
            ]
        ),
        "created ACL: allow User:bob to write topic orders (literal) from host *\n"
    );
    let binding = "topic          orders    literal  User:bob   *     write      allow\n";
    assert_eq!(
        broker.ok(ADMIN, &["acl", "list"]),
        format!("{ACL_HEADER}{binding}")
    );
    assert_eq!(
        broker.ok(BOB, &["topic", "list"]),
        "TOPIC   PARTITIONS\norders  1\n"
    );
    // (The count of produced records goes to stderr.)
    assert_eq!(
        broker.ok_with_input(BOB, &["produce", "orders"], "v1\n"),
        ""
    );
    assert_eq!(
        broker.ok(ADMIN, &["consume", "orders", "--from", "beginning", "-e"]),
        "v1\n"
    );

    // Revoked, he is refused again.
    assert_eq!(
        broker.ok(
            ADMIN,
            &[
                "acl",
                "delete",
                "--principal",
                "User:bob",
                "--topic",
                "orders"
            ]
        ),
        "deleted ACL: allow User:bob to write topic orders (literal) from host *\n"
    );
    assert_eq!(broker.ok(ADMIN, &["acl", "list"]), ACL_HEADER);
    assert_eq!(broker.fails(BOB, &["produce", "orders"], "v2\n"), REFUSED);

    // Deleted, he cannot even log in, while the super user still can.
    assert_eq!(
        broker.ok(ADMIN, &["user", "delete", "bob"]),
        "deleted the SCRAM-SHA-256 credential of user bob\n"
    );
    assert_eq!(
        broker.fails(BOB, &["topic", "list"], ""),
        format!(
            "strom: cannot fetch metadata from {}: Meta data fetch error: \
             BrokerTransportFailure (Local: Broker transport failure)\n",
            broker.addr
        )
    );
    assert_eq!(
        broker.fails(ADMIN, &["user", "list", "bob"], ""),
        "strom: cannot describe user bob: ResourceNotFound (user `bob` has no SCRAM credential)\n"
    );
    assert_eq!(
        broker.ok(ADMIN, &["topic", "list"]),
        "TOPIC   PARTITIONS\norders  1\n"
    );
}

#[test]
fn acl_filters_select_by_pattern_operation_and_permission() {
    let broker = Broker::start();
    let create = |extra: &[&str]| {
        let args = [&["acl", "create", "--principal", "User:app"], extra].concat();
        broker.ok(ADMIN, &args)
    };
    assert_eq!(
        create(&[
            "--operation",
            "read",
            "--operation",
            "describe",
            "--topic",
            "orders.",
            "--pattern",
            "prefixed"
        ]),
        "created ACL: allow User:app to read topic orders. (prefixed) from host *\n\
         created ACL: allow User:app to describe topic orders. (prefixed) from host *\n"
    );
    create(&["--deny", "--operation", "write", "--topic", "*"]);
    create(&["--operation", "idempotent-write", "--cluster"]);
    create(&[
        "--operation",
        "read",
        "--group",
        "app-",
        "--pattern",
        "prefixed",
    ]);

    // `match` finds every ACL that applies to one topic: prefixes and the wildcard.
    assert_eq!(
        broker.ok(
            ADMIN,
            &["acl", "list", "--topic", "orders.eu", "--pattern", "match"]
        ),
        "RESOURCE-TYPE  RESOURCE  PATTERN   PRINCIPAL  HOST  OPERATION  PERMISSION\n\
         topic          *         literal   User:app   *     write      deny\n\
         topic          orders.   prefixed  User:app   *     read       allow\n\
         topic          orders.   prefixed  User:app   *     describe   allow\n"
    );
    assert_eq!(
        broker.ok(ADMIN, &["acl", "list", "--cluster"]),
        "RESOURCE-TYPE  RESOURCE       PATTERN  PRINCIPAL  HOST  OPERATION         PERMISSION\n\
         cluster        kafka-cluster  literal  User:app   *     idempotent-write  allow\n"
    );

    // Deleting by principal and operation leaves the rest.
    assert_eq!(
        broker.ok(
            ADMIN,
            &[
                "acl",
                "delete",
                "--principal",
                "User:app",
                "--operation",
                "read"
            ]
        ),
        "deleted ACL: allow User:app to read topic orders. (prefixed) from host *\n\
         deleted ACL: allow User:app to read group app- (prefixed) from host *\n"
    );
    assert_eq!(
        broker.ok(ADMIN, &["acl", "list", "--deny"]),
        "RESOURCE-TYPE  RESOURCE  PATTERN  PRINCIPAL  HOST  OPERATION  PERMISSION\n\
         topic          *         literal  User:app   *     write      deny\n"
    );
    assert_eq!(
        broker.ok(
            ADMIN,
            &["acl", "delete", "--group", "app-", "--pattern", "any"]
        ),
        "no ACL matched\n"
    );
    assert_eq!(
        broker.fails(ADMIN, &["acl", "delete", "--operation", "write"], ""),
        "strom: give a resource (--topic, --group, --transactional-id, --cluster) or \
         --principal to say which ACLs to delete\n"
    );
}

#[test]
fn unknown_users_and_missing_passwords_are_one_line_errors() {
    let broker = Broker::start();
    assert_eq!(
        broker.fails(
            ADMIN,
            &["user", "create", "carol", "--password-stdin"],
            "\n"
        ),
        "strom: no password on stdin\n"
    );
    assert_eq!(
        broker.fails(ADMIN, &["user", "delete", "carol"], ""),
        "strom: cannot describe user carol: ResourceNotFound (user `carol` has no SCRAM credential)\n"
    );
    assert_eq!(
        broker.fails(
            ADMIN,
            &["user", "delete", "carol", "--mechanism", "SCRAM-SHA-256"],
            ""
        ),
        "strom: cannot delete user carol: ResourceNotFound (user `carol` has no SCRAM-SHA-256 \
         credential)\n"
    );
}
