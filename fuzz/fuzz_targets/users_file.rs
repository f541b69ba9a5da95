//! The users-file parser: any text is refused with an error or yields accounts that are valid,
//! and saving them and reading them back gives the same accounts.
#![no_main]

use ferry::accounts::users::{UsersFile, validate_home, validate_user_name};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    let path = Path::new("users.toml");
    let users = match UsersFile::parse(text, path) {
        Ok(users) => users,
        Err(error) => {
            // Messages are built from the input; building one must not panic either.
            let _ = error.to_string();
            return;
        }
    };
    for user in users.users() {
        validate_user_name(&user.name).expect("accepted names are valid");
        let home = user.home.to_str().expect("homes are UTF-8");
        validate_home(home).expect("accepted homes are beneath the root");
    }
    let saved = users.to_toml(path).expect("accepted accounts can be saved");
    let reread = UsersFile::parse(&saved, path).expect("a saved file reads back");
    let names = |file: &UsersFile| -> Vec<String> {
        file.users()
            .map(|user| {
                format!(
                    "{:?}",
                    (
                        &user.name,
                        &user.home,
                        &user.permissions,
                        user.enabled,
                        &user.allowed_networks,
                        &user.password_hash
                    )
                )
            })
            .collect()
    };
    assert_eq!(names(&reread), names(&users));
});
