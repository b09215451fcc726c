//! The typed inputs of the userpass method's paths (`tresor_sdk::input!`). A user update
//! changes only what it sends (`Opt` kinds; the `token_*` fields are `TokenParams`', which
//! `users/:username` declares next to these).

tresor_sdk::input! {
    /// The `username` of every `users/:username...` path.
    pub(crate) struct UsernameInput {
        username: Str, "Username for this user: letters, digits, '_', '-' and '.'; it may not begin with '-' nor begin or end with '.'. Case-insensitive (stored in lower case).";
    }
}

tresor_sdk::input! {
    /// `users/:username` and `users/:username/password`: a new password, as text or as a
    /// bcrypt hash (at most one of them).
    pub(crate) struct PasswordInput {
        password: OptStr, "Password for this user (at most 72 bytes). Required when creating the user, unless password_hash is given.";
        password_hash: OptStr, "The user's password as a bcrypt hash ($2a$, $2b$ or $2y$), instead of password.";
    }
}

tresor_sdk::input! {
    /// `users/:username/policies` (applied through `TokenParams::update`, which takes the
    /// current name over the legacy one).
    pub(crate) struct PoliciesInput {
        token_policies: OptList, "Policies of tokens issued by this user's logins.";
        policies: OptList, "Deprecated: use token_policies.";
    }
}

tresor_sdk::input! {
    /// `login/:username`.
    pub(crate) struct LoginInput {
        username: Str, "Username of the user (case-insensitive).";
        password: Str, "Password of the user.";
    }
}
