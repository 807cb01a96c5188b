#!/usr/bin/env python3
"""Generates crates/apimachinery/src/protobuf/generated.rs: one `ToJson` impl per
k8s-pb (prost) message reachable from the built-in kinds moor accepts as
`application/vnd.kubernetes.protobuf` request bodies.

Why generated: prost messages carry no runtime reflection, and the JSON names of
Kubernetes fields (`podIP`, `nonResourceURLs`) cannot be recovered from prost's
snake_case idents (`pod_ip`, `non_resource_ur_ls`). The generator reads both crates
as cargo unpacked them: k8s-pb gives each message's fields and wire kinds, and
k8s-openapi (the types moor serves as JSON) gives each field's JSON name, matched by
the name with underscores removed and lowercased. A field k8s-openapi does not know
(an API newer than k8s-openapi's) gets the lowerCamelCase of its ident, reported on
stderr and marked in the output, and reaches fieldValidation as an unknown field.

Which zero values to leave out comes from the Go types themselves (k8s.io/api and
k8s.io/apimachinery checkouts, matched by protobuf tag): Go's protobuf encoder writes
every non-pointer field, zero or not, and Go's JSON encoder leaves a zero one out when
its tag says `omitempty`; a pointer field is on the wire only when set, so its zero
(`replicas: 0`, `automountServiceAccountToken: false`) is kept.

Usage (from the repository root, after `cargo fetch`; API and APIMACHINERY are
checkouts of k8s.io/api and k8s.io/apimachinery):
    python3 scripts/gen-protobuf-json.py API APIMACHINERY \
        > crates/apimachinery/src/protobuf/generated.rs
    cargo fmt --all

The committed generated.rs was made from k8s.io/api 10b39a39bcee and
k8s.io/apimachinery eed236ceee2c (July 2026, the v1.37 line); only the Go structs'
field tags are read.
"""

import glob
import os
import re
import sys

REGISTRY = os.path.expanduser("~/.cargo/registry/src")


def crate_dir(name_version):
    dirs = sorted(glob.glob(os.path.join(REGISTRY, "*", name_version)))
    if not dirs:
        sys.exit(f"{name_version} is not unpacked under {REGISTRY}: run cargo fetch")
    return dirs[0]


K8S_PB = crate_dir("k8s-pb-0.9.0")
K8S_OPENAPI = crate_dir("k8s-openapi-0.29.0")
# The k8s-openapi API version moor builds with (its `latest` feature).
OPENAPI_VERSION = "v1_37"

# The kinds moor decodes from protobuf: (Rust path under k8s_pb, apiVersion, kind).
ROOTS = [
    ("api::core::v1::Namespace", "v1", "Namespace"),
    ("api::core::v1::Secret", "v1", "Secret"),
    ("api::core::v1::ConfigMap", "v1", "ConfigMap"),
    ("api::core::v1::Event", "v1", "Event"),
    ("api::core::v1::ServiceAccount", "v1", "ServiceAccount"),
    ("api::core::v1::Pod", "v1", "Pod"),
    ("api::apps::v1::Deployment", "apps/v1", "Deployment"),
    ("api::apps::v1::ReplicaSet", "apps/v1", "ReplicaSet"),
    ("api::apps::v1::StatefulSet", "apps/v1", "StatefulSet"),
    ("api::apps::v1::DaemonSet", "apps/v1", "DaemonSet"),
    ("api::batch::v1::Job", "batch/v1", "Job"),
    ("api::batch::v1::CronJob", "batch/v1", "CronJob"),
    ("api::rbac::v1::Role", "rbac.authorization.k8s.io/v1", "Role"),
    ("api::rbac::v1::ClusterRole", "rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("api::rbac::v1::RoleBinding", "rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("api::rbac::v1::ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("apimachinery::pkg::apis::meta::v1::DeleteOptions", "v1", "DeleteOptions"),
    ("api::authentication::v1::TokenRequest", "authentication.k8s.io/v1", "TokenRequest"),
    ("api::authentication::v1::TokenReview", "authentication.k8s.io/v1", "TokenReview"),
    ("api::authentication::v1::SelfSubjectReview", "authentication.k8s.io/v1", "SelfSubjectReview"),
    ("api::authorization::v1::SubjectAccessReview", "authorization.k8s.io/v1", "SubjectAccessReview"),
    ("api::authorization::v1::LocalSubjectAccessReview", "authorization.k8s.io/v1", "LocalSubjectAccessReview"),
    ("api::authorization::v1::SelfSubjectAccessReview", "authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("api::authorization::v1::SelfSubjectRulesReview", "authorization.k8s.io/v1", "SelfSubjectRulesReview"),
]

# Messages whose JSON form is not an object of their fields: hand-written in
# protobuf/json.rs.
HAND_WRITTEN = {
    "apimachinery::pkg::apis::meta::v1::Time",
    "apimachinery::pkg::apis::meta::v1::MicroTime",
    "apimachinery::pkg::apis::meta::v1::Duration",
    "apimachinery::pkg::apis::meta::v1::FieldsV1",
    "apimachinery::pkg::api::resource::Quantity",
    "apimachinery::pkg::util::intstr::IntOrString",
    "apimachinery::pkg::runtime::RawExtension",
    # Go `type ExtraValue []string`: protobuf wraps the slice in `items`.
    "api::authentication::v1::ExtraValue",
    "api::authorization::v1::ExtraValue",
}

STRUCT_RE = re.compile(r"^pub struct (\w+) \{\n(.*?)^\}", re.S | re.M)
FIELD_RE = re.compile(r"^\s*([^\]]*)\)\]\s*pub (r#)?(\w+):\s*(.*)$", re.S)


def parse_k8s_pb():
    messages = {}
    for path in glob.glob(os.path.join(K8S_PB, "src", "**", "mod.rs"), recursive=True):
        rel = os.path.relpath(os.path.dirname(path), os.path.join(K8S_PB, "src"))
        module = rel.replace(os.sep, "::")
        src = open(path).read()
        for m in STRUCT_RE.finditer(src):
            fields = []
            for chunk in m.group(2).split("#[prost(")[1:]:
                # A field runs to the next field's doc comment (or the struct's end).
                chunk = re.split(r"^\s*///", chunk, flags=re.M)[0].strip().rstrip(",")
                f = FIELD_RE.match(chunk)
                if not f:
                    sys.exit(f"cannot parse a field of {module}::{m.group(1)}: {chunk}")
                attr, _raw, ident, ty = f.groups()
                fields.append((attr, ident, " ".join(ty.split()).replace(", >", ">").replace(",>", ">")))
            messages[f"{module}::{m.group(1)}"] = fields
    return messages


def json_names():
    """JSON field names of every k8s-openapi struct, keyed by its module path (as
    k8s-pb spells it) and lowercased type name: for each normalized field name, the
    JSON name and whether k8s-openapi holds the field as an `Option`."""
    names = {}
    root = os.path.join(K8S_OPENAPI, "src", OPENAPI_VERSION)
    for path in glob.glob(os.path.join(root, "**", "*.rs"), recursive=True):
        src = open(path).read()
        structs = re.findall(r"^pub struct (\w+)", src, re.M)
        if len(structs) != 1:
            continue
        module = os.path.relpath(os.path.dirname(path), root).replace(os.sep, "::")
        optional = set(re.findall(r"^    pub (\w+): Option<", src, re.M))
        idents = dict(re.findall(r'"([^"]+)" => Field::Key_(\w+),', src))
        fields = {}
        for name in re.findall(r'serialize_field\(&mut state, "([^"]+)"', src):
            fields[name.replace("_", "").lower()] = (name, idents.get(name) in optional)
        names[f"{module}::{structs[0].lower()}"] = fields
    return names


GO_STRUCT_RE = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.S | re.M)
GO_FIELD_RE = re.compile(
    r'^\s+(?:\w+\s+)?(\S+)\s+`json:"([^"]*)"[^`]*protobuf:"[a-z0-9]+,(\d+),', re.M)


def go_fields(api_dir, apimachinery_dir):
    """For each Go struct (keyed by k8s-pb's module path and lowercased name), by
    protobuf tag: whether Go leaves the field's zero value out of JSON (a non-pointer
    scalar whose json tag says omitempty)."""
    roots = [(api_dir, "api"), (apimachinery_dir, "apimachinery")]
    out = {}
    for root, prefix in roots:
        for path in glob.glob(os.path.join(root, "**", "*.go"), recursive=True):
            if path.endswith("_test.go") or "generated" in os.path.basename(path):
                continue
            module = "::".join([prefix] + os.path.relpath(os.path.dirname(path), root).split(os.sep))
            for m in GO_STRUCT_RE.finditer(open(path).read()):
                fields = {}
                for go_type, json_tag, tag in GO_FIELD_RE.findall(m.group(2)):
                    # Only protobuf scalars ask: a named Go type (types.UID) is one too.
                    scalar = not go_type.startswith(("*", "[]", "map["))
                    fields[tag] = scalar and ",omitempty" in json_tag
                out[f"{module}::{m.group(1).lower()}"] = fields
    return out


def resolve(module, ty):
    """The full path of the message type inside `ty` (wrappers removed)."""
    inner = ty
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"):
        while inner.startswith(wrapper):
            inner = inner[len(wrapper):-1].strip()
    if inner.startswith("::prost::alloc::collections::BTreeMap<"):
        inner = inner[len("::prost::alloc::collections::BTreeMap<"):-1]
        inner = inner.split(",", 1)[1].strip()
    parts = module.split("::")
    segs = inner.split("::")
    while segs and segs[0] == "super":
        parts = parts[:-1]
        segs = segs[1:]
    return "::".join(parts + segs)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen-protobuf-json.py K8S_IO_API_DIR K8S_IO_APIMACHINERY_DIR")
    messages = parse_k8s_pb()
    names = json_names()
    go = go_fields(sys.argv[1], sys.argv[2])
    seen, order, todo = set(), [], [r[0] for r in ROOTS]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if path not in messages:
            sys.exit(f"k8s-pb has no message {path}")
        seen.add(path)
        order.append(path)
        if path in HAND_WRITTEN:
            continue
        module = path.rsplit("::", 1)[0]
        for attr, _ident, ty in messages[path]:
            if attr.startswith("message") or "message\"" in attr:
                todo.append(resolve(module, ty))

    out = [
        "// @generated by scripts/gen-protobuf-json.py from k8s-pb 0.9.0, k8s-openapi",
        f"// 0.29.0 ({OPENAPI_VERSION}) and the Go types of k8s.io/api and k8s.io/apimachinery.",
        "// Do not edit: run the script.",
        "",
        "//! The JSON form of every k8s-pb message reachable from [`KINDS`].",
        "",
        "use super::json::{Obj, ToJson};",
        "use serde_json::Value;",
        "",
        "/// Decodes `raw` as the message of one kind, into the JSON a JSON body would give.",
        "pub(super) type DecodeFn = fn(&[u8]) -> Result<Value, prost::DecodeError>;",
        "",
        "/// The kinds moor decodes from protobuf: `(apiVersion, kind, decoder)`.",
        "pub(super) const KINDS: &[(&str, &str, DecodeFn)] = &[",
    ]
    for path, api_version, kind in ROOTS:
        out.append(f'    ("{api_version}", "{kind}", super::json::decode::<k8s_pb::{path}>),')
    out.append("];")
    inline_parents = {}

    def known_fields(path):
        module, struct = path.rsplit("::", 1)
        known = names.get(f"{module}::{struct.lower()}")
        if known is None and path in inline_parents:
            return known_fields(inline_parents[path])
        return known or {}

    def is_inline(path, attr, ident, ty):
        """A Go embedded struct (`json:",inline"`): protobuf nests it in a field of
        its own, JSON flattens its fields into the parent's."""
        if not attr.startswith("message, optional"):
            return False
        known = known_fields(path)
        if ident.replace("_", "") in known:
            return False
        target = resolve(path.rsplit("::", 1)[0], ty)
        return all(f[1].replace("_", "") in known for f in messages[target])

    for path in order:
        if path in HAND_WRITTEN:
            continue
        for attr, ident, ty in messages[path]:
            if is_inline(path, attr, ident, ty):
                inline_parents.setdefault(resolve(path.rsplit("::", 1)[0], ty), path)

    for path in sorted(order):
        if path in HAND_WRITTEN:
            continue
        out.append("")
        out.append(f"impl ToJson for k8s_pb::{path} {{")
        out.append("    fn to_json(&self) -> Value {")
        fields = messages[path]
        binding = "o" if fields else "_o"
        out.append(f"        let mut {binding} = Obj::default();")
        for attr, ident, _ty in fields:
            key = ident.replace("_", "").lower()
            known = known_fields(path)
            name, optional = known.get(key, (None, True))
            if is_inline(path, attr, ident, _ty):
                out.append(f"        {binding}.inline(&self.{ident});")
                continue
            if name is None:
                # Not in k8s-openapi's API version: the Go name (lowerCamelCase of
                # the ident), so the field reaches fieldValidation as an unknown
                # field, as the same field in a JSON body would.
                head, *rest = ident.split("_")
                name = head + "".join(w.capitalize() for w in rest)
                print(f"warning: {path}.{ident} is not in k8s-openapi {OPENAPI_VERSION};"
                      f" named {name}", file=sys.stderr)
                out.append(f"        // Not in k8s-openapi {OPENAPI_VERSION}.")
            rust_ident = f"r#{ident}" if ident in ("type", "ref", "continue") else ident
            if "bytes" in attr:
                method = "bytes"
            elif re.match(r"(string|bool|int32|int64|double), optional", attr):
                tag = re.search(r'tag = "(\d+)"', attr).group(1)
                omit = go.get(path.lower().rsplit("::", 1)[0] + "::" + path.rsplit("::", 1)[1].lower(), {}).get(tag)
                if omit is None:
                    # No Go type at hand: an empty string is left out where
                    # k8s-openapi holds the field as an Option.
                    omit = attr.startswith("string") and optional
                    print(f"warning: no Go field for {path}.{ident}", file=sys.stderr)
                method = "omitzero" if omit else "put"
            else:
                method = "put"
            out.append(f'        {binding}.{method}("{name}", &self.{rust_ident});')
        out.append(f"        {binding}.into()")
        out.append("    }")
        out.append("}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
