//! The typed inputs of the KV engine's paths (`tresor_sdk::input!`): each path declares its
//! fields here, in the order its help lists them, and its handlers read them as struct fields.
//! Several version 2 paths share a group (the secret's `path`, the `version` a read asks for);
//! a path declares its groups in order with `.input::<A>().input::<B>()`, and each handler
//! reads only the groups it needs, so a read never copies a write's `data`.
//!
//! Settings change only when sent (`config`, `metadata/:path`: `Opt` kinds), and
//! `custom_metadata` keeps apart not sent, `null` (cleared) and an object.

tresor_sdk::input! {
    /// The secret or folder a path acts on: `{path}` of every version 1 path and of version
    /// 2's `data/`, `delete/`, `undelete/`, `destroy/`, `metadata/` and `subkeys/`.
    pub(crate) struct SecretPath {
        path: Str, "Location of the secret, relative to the mount; may contain '/' to form folders.";
    }
}

tresor_sdk::input! {
    /// Version 2 `config`: only the settings sent change.
    pub(crate) struct ConfigInput {
        max_versions: OptInt, "How many versions to keep per secret; once exceeded, the oldest versions are removed for good. 0 means 10.";
        cas_required: OptBool, "If true, every write must carry the 'cas' option (check-and-set).";
        delete_version_after: OptDuration, "How long after it is written a version is soft-deleted, as a duration such as '3h25m19s'; '0s' never deletes.";
    }
}

tresor_sdk::input! {
    /// The version a read of `data/:path` or `subkeys/:path` asks for.
    pub(crate) struct ReadVersion {
        version: Int, "Version to read; 0 or absent reads the latest version.";
    }
}

tresor_sdk::input! {
    /// The body of a write or patch of `data/:path`. `data` is `None` when not sent; a sent
    /// `null` reads as an empty object here, so the handler tells it apart from `{}` by the
    /// request's raw keys (both absent and `null` are "no data provided").
    pub(crate) struct DataWrite {
        data: OptMap, "The secret's contents: any JSON object. On PATCH, merged into the current version.";
        options: Map, "Write options. 'cas' (integer): the version the secret must currently be at for the write to succeed; 0 means the secret must not exist.";
    }
}

tresor_sdk::input! {
    /// `delete/:path`.
    pub(crate) struct DeleteVersions {
        versions: List, "The versions to soft-delete.";
    }
}

tresor_sdk::input! {
    /// `undelete/:path`.
    pub(crate) struct UndeleteVersions {
        versions: List, "The versions to restore.";
    }
}

tresor_sdk::input! {
    /// `destroy/:path`.
    pub(crate) struct DestroyVersions {
        versions: List, "The versions whose data is erased for good.";
    }
}

tresor_sdk::input! {
    /// A write or patch of `metadata/:path`: only the settings sent change; `custom_metadata`
    /// is `None` when not sent, `Some(null)` to clear it, else an object of strings.
    pub(crate) struct MetadataInput {
        max_versions: OptInt, "How many versions to keep for this secret; 0 uses the mount's setting. Applied on the next write.";
        cas_required: OptBool, "If true, writes to this secret must carry the 'cas' option; if false, the mount's setting applies.";
        delete_version_after: OptDuration, "How long after it is written a new version of this secret is soft-deleted; the mount's setting wins when shorter. '0s' uses the mount's.";
        custom_metadata: OptRaw, "String-to-string map describing the secret (at most 64 keys, keys up to 128 bytes, values up to 512 bytes).";
    }
}

tresor_sdk::input! {
    /// How deep `subkeys/:path` shows the structure.
    pub(crate) struct SubkeysDepth {
        depth: Int, "Deepest nesting level to show; keys at this level are shown as leaves. 0 means no limit.";
    }
}
