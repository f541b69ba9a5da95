//! Tests of the users file: parsing, validation and atomic saving.

use super::*;
use crate::accounts::password::{hash_password, verify_password};

/// A well-formed argon2id hash (of no known password): validation tests need no real hashing.
const SOME_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8Q8ybzXz1c4wzuDf2qHbR0mO3qlpGiqqK8ySa1Qd9Ww";

fn users_toml(user_table: &str) -> String {
    format!("[users.bob]\npassword = \"{SOME_HASH}\"\n{user_table}")
}

fn parse_error(text: &str) -> String {
    match UsersFile::parse(text, Path::new("config/users.toml")) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn valid_file_loads_with_defaults_and_shorthands() {
    let text = users_toml("home = \"bob\"\npermissions = \"read-only\"\n")
        + "[users.amy]\npassword = \""
        + SOME_HASH
        + "\"\nhome = \"shared/amy\"\npermissions = [\"list\", \"upload\"]\nenabled = false\n\
           allowed_networks = [\"10.0.0.0/8\", \"192.0.2.7\"]\n";
    let users = UsersFile::parse(&text, Path::new("u.toml")).expect("valid");
    let bob = users.get("bob").expect("bob");
    assert_eq!(bob.home, PathBuf::from("bob"));
    assert_eq!(bob.permissions, Permissions::READ_ONLY);
    assert!(bob.enabled, "enabled defaults to true");
    assert!(bob.allowed_networks.is_empty());
    let amy = users.get("amy").expect("amy");
    assert!(!amy.enabled);
    assert!(amy.permissions.list && amy.permissions.upload && !amy.permissions.delete);
    assert!(amy.allows_ip("10.1.2.3".parse().expect("ip")));
    assert!(amy.allows_ip("192.0.2.7".parse().expect("ip")));
    assert!(!amy.allows_ip("192.0.2.8".parse().expect("ip")));
    assert!(
        amy.allows_ip("::ffff:10.0.0.1".parse().expect("ip")),
        "IPv4-mapped IPv6 matches its IPv4 network"
    );
}

#[test]
fn require_tls_defaults_to_false_and_must_be_a_boolean() {
    let users = UsersFile::parse(
        &users_toml("home = \"bob\"\npermissions = \"all\"\nrequire_tls = true\n"),
        Path::new("u.toml"),
    )
    .expect("valid");
    assert!(users.get("bob").expect("bob").require_tls);
    let message = parse_error(&users_toml(
        "home = \"bob\"\npermissions = \"all\"\nrequire_tls = \"yes\"\n",
    ));
    assert!(
        message.contains("field `require_tls`: expected true or false"),
        "{message}"
    );
}

#[test]
fn unknown_field_is_an_error_naming_file_user_and_field() {
    let message = parse_error(&users_toml("hom = \"bob\"\npermissions = \"all\"\n"));
    assert!(
        message.starts_with("config/users.toml: user `bob`: field `hom`: unknown field"),
        "{message}"
    );
}

#[test]
fn unknown_top_level_table_is_an_error() {
    let message = parse_error("[user.bob]\nhome = \"bob\"\n");
    assert!(message.contains("config/users.toml: line 1"), "{message}");
    assert!(
        message.contains("unknown top-level key `user`"),
        "{message}"
    );
}

#[test]
fn plaintext_or_non_argon2id_password_is_an_error() {
    let message =
        parse_error("[users.bob]\npassword = \"hunter2\"\nhome = \"bob\"\npermissions = \"all\"\n");
    assert!(
        message.starts_with("config/users.toml: user `bob`: field `password`: not a PHC"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "never echo a password: {message}"
    );
}

#[test]
fn absolute_home_is_an_error() {
    let message = parse_error(&users_toml("home = \"/etc\"\npermissions = \"all\"\n"));
    assert_eq!(
        message,
        "config/users.toml: user `bob`: field `home`: must be relative to the root, got \"/etc\""
    );
}

#[test]
fn home_with_dot_dot_is_an_error() {
    let message = parse_error(&users_toml(
        "home = \"bob/../../x\"\npermissions = \"all\"\n",
    ));
    assert_eq!(
        message,
        "config/users.toml: user `bob`: field `home`: must not contain `..`, got \"bob/../../x\""
    );
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let message = parse_error(&users_toml("permissions = \"all\"\n"));
    assert_eq!(
        message,
        "config/users.toml: user `bob`: field `home`: missing"
    );
    let message = parse_error(&users_toml(
        "home = \"b\"\npermissions = \"all\"\nenabled = \"yes\"\n",
    ));
    assert!(
        message.contains("field `enabled`: expected true or false"),
        "{message}"
    );
    let message = parse_error(&users_toml("home = \"b\"\npermissions = [\"fly\"]\n"));
    assert!(
        message.contains("field `permissions`: unknown permission \"fly\""),
        "{message}"
    );
    let message = parse_error(&users_toml(
        "home = \"b\"\npermissions = \"all\"\nallowed_networks = [\"10.0.0.0/33\"]\n",
    ));
    assert!(message.contains("field `allowed_networks`"), "{message}");
}

#[test]
fn bad_user_names_are_errors() {
    let message = parse_error(&format!(
        "[users.\"bad name\"]\npassword = \"{SOME_HASH}\"\nhome = \"x\"\npermissions = \"all\"\n"
    ));
    assert!(
        message.contains("user \"bad name\": invalid user name"),
        "{message}"
    );
    let message = parse_error(&format!(
        "[users.\"\"]\npassword = \"{SOME_HASH}\"\nhome = \"x\"\npermissions = \"all\"\n"
    ));
    assert!(message.contains("must not be empty"), "{message}");
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let message = parse_error("# users\n\n[users.bob]\nhome = \"unterminated\n");
    assert!(
        message.starts_with("config/users.toml: line 4, column "),
        "{message}"
    );
}

#[test]
fn missing_file_error_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.toml");
    let message = UsersFile::load(&path).expect_err("missing").to_string();
    assert!(message.contains("absent.toml"), "{message}");
}

#[test]
fn save_then_load_round_trips_every_field_and_keeps_other_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.toml");
    let mut users = UsersFile::new();
    let custom = Permissions {
        rename: true,
        ..Permissions::READ_ONLY
    };
    users.insert(UserRecord {
        name: "a.b".into(),
        password_hash: hash_password("first").expect("hash"),
        home: "homes/a.b".into(),
        permissions: custom,
        enabled: false,
        allowed_networks: vec![
            "10.0.0.0/8".parse().expect("net"),
            "::1/128".parse().expect("net"),
        ],
        require_tls: true,
        limits: Default::default(),
    });
    users.insert(UserRecord {
        name: "carol".into(),
        password_hash: SOME_HASH.into(),
        home: ".".into(),
        permissions: Permissions::ALL,
        enabled: true,
        allowed_networks: Vec::new(),
        require_tls: false,
        limits: Default::default(),
    });
    users.save(&path).expect("save");

    let mut loaded = UsersFile::load(&path).expect("load");
    assert_eq!(loaded.len(), 2);
    let ab = loaded.get("a.b").expect("a.b");
    assert_eq!(ab.permissions, custom);
    assert!(!ab.enabled);
    assert_eq!(ab.home, PathBuf::from("homes/a.b"));
    assert_eq!(ab.allowed_networks.len(), 2);
    assert!(ab.require_tls);
    assert!(!loaded.get("carol").expect("carol").require_tls);
    assert!(verify_password(&ab.password_hash, "first"));

    loaded.remove("carol");
    loaded.save(&path).expect("save again");
    let reloaded = UsersFile::load(&path).expect("load again");
    assert!(reloaded.get("a.b").is_some() && reloaded.get("carol").is_none());
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.starts_with(USERS_FILE_HEADER));
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "users.toml")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[cfg(unix)]
#[test]
fn save_creates_owner_only_files_and_keeps_existing_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.toml");
    UsersFile::new().save(&path).expect("save");
    let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
    UsersFile::new().save(&path).expect("save");
    let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn debug_output_never_shows_the_hash() {
    let record = UserRecord {
        name: "bob".into(),
        password_hash: SOME_HASH.into(),
        home: "bob".into(),
        permissions: Permissions::ALL,
        enabled: true,
        allowed_networks: Vec::new(),
        require_tls: false,
        limits: Default::default(),
    };
    assert!(!format!("{record:?}").contains("argon2"));
}

#[test]
fn shipped_users_file_loads_and_demo_password_verifies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/users.toml");
    let users = UsersFile::load(&path).expect("shipped users file");
    let demo = users.get("demo").expect("demo user");
    assert!(verify_password(
        &demo.password_hash,
        PUBLISHED_DEMO_PASSWORD
    ));
    assert_eq!(demo.home, PathBuf::from("demo"));
    assert_eq!(demo.permissions, Permissions::ALL);
    assert!(demo.enabled);
    assert!(demo.allows_ip("127.0.0.1".parse().expect("ip")));
    assert!(demo.allows_ip("::1".parse().expect("ip")));
    assert!(!demo.allows_ip("192.0.2.1".parse().expect("ip")));
}
