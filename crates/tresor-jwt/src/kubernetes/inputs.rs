//! The typed inputs of the Kubernetes method's paths (`tresor_sdk::input!`). A config write
//! replaces the whole configuration; a role update changes only what it sends (`Opt` kinds;
//! the `token_*` fields are `TokenParams`').

tresor_sdk::input! {
    /// `config`.
    pub(crate) struct ConfigInput {
        kubernetes_host: Str, "The Kubernetes API server's URL (required).";
        kubernetes_ca_cert: Str, "PEM CA certificate of the API server.";
        token_reviewer_jwt: Str, "The bearer token (a service-account JWT or any other) that authenticates TokenReview calls (default: the login's own JWT). Never returned.";
        token_reviewer_jwt_file: Str, "Beyond Vault: an absolute path to a file holding the reviewer JWT (a projected service-account token), read again whenever the file changes. Not with token_reviewer_jwt.";
        pem_keys: List, "PEM public keys or certificates that must verify service-account tokens before TokenReview.";
        issuer: Str, "The iss claim tokens must have, when issuer validation is on (default kubernetes/serviceaccount).";
        disable_iss_validation: Bool, "Do not check the iss claim (default true).", default = true;
        disable_local_ca_jwt: Bool, "Do not fall back to the pod's own service-account token and CA.";
    }
}

tresor_sdk::input! {
    /// `role/:name`.
    pub(crate) struct RoleInput {
        name: Str, "Name of the role.";
        bound_service_account_names: OptList, "Service account names that may log in (\"*\" globs allowed).";
        bound_service_account_namespaces: OptList, "Namespaces whose service accounts may log in (\"*\" globs allowed).";
        audience: OptStr, "An audience the token must have; TokenReview is asked for it too.";
        alias_name_source: OptStr, "serviceaccount_uid (default) or serviceaccount_name (namespace/name) names the identity alias.";
        review_mode: OptStr, "Beyond Vault: token_review (default: the API server's TokenReview confirms each login) or local_keys (the config's pem_keys verify the token, which must carry exp; the API server is not asked).";
    }
}

tresor_sdk::input! {
    /// `login`.
    pub(crate) struct LoginInput {
        role: Str, "The role to log in with.";
        jwt: Str, "The service-account JWT.";
    }
}
