#!/usr/bin/python3
"""The Python half of deploy/check.sh: structural checks of the deploy files.

    check.py manifests DIR OUT          Kubernetes manifests in DIR; writes the
                                        ConfigMap's funnel.yaml to OUT
    check.py local-config IN OUT PORTS  a config for the throwaway run: IN with
                                        local addresses and known passwords;
                                        prints the schemas to create
    check.py families SCRAPE            every metric Funnel documents is there
    check.py dashboard JSON SCRAPE OUT  the Grafana dashboard; writes its
                                        queries to OUT as a Prometheus rules
                                        file for `promtool check rules`

Each command prints every problem it finds and exits 1 if there was one.
Needs PyYAML (Debian: python3-yaml).
"""

import json
import os
import re
import sys

import yaml

# The metric families Funnel exports (docs/operations.md, deploy/grafana).
FAMILIES = {
    "funnel_queries_total": "counter",
    "funnel_forwarded_total": "counter",
    "funnel_bytes_total": "counter",
    "funnel_errors_total": "counter",
    "funnel_client_connections_accepted_total": "counter",
    "funnel_client_connections_refused_total": "counter",
    "funnel_session_panics_total": "counter",
    "funnel_backend_connections_opened_total": "counter",
    "funnel_backend_connections_closed_total": "counter",
    "funnel_backend_connections_switched_total": "counter",
    "funnel_backend_connect_failures_total": "counter",
    "funnel_backlog_timeouts_total": "counter",
    "funnel_backlog_full_total": "counter",
    "funnel_state_syncs_total": "counter",
    "funnel_clients": "gauge",
    "funnel_pinned_clients": "gauge",
    "funnel_oldest_transaction_seconds": "gauge",
    "funnel_backlog_waiting": "gauge",
    "funnel_backend_connections": "gauge",
    "funnel_backend_up": "gauge",
    "funnel_backend_drained": "gauge",
    "funnel_backend_takes_writes": "gauge",
    "funnel_query_rule_hits_total": "counter",
    "funnel_query_cache_lookups_total": "counter",
    "funnel_query_cache_bytes": "gauge",
    "funnel_query_log_lines_total": "counter",
    "funnel_query_log_dropped_total": "counter",
    "funnel_query_duration_seconds": "histogram",
    "funnel_backlog_wait_seconds": "histogram",
    "funnel_backend_connect_seconds": "histogram",
}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def finish(what):
    if problems:
        print(f"FAIL {what}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        sys.exit(1)


def dig(doc, path, default=None):
    """doc['a']['b'][0]... for path 'a.b.0'; default when any step is missing."""
    node = doc
    for step in path.split("."):
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return default
    return node


def port_of(listen):
    """The port of an `IP:port` or `[IPv6]:port` listen address."""
    return int(str(listen).rsplit(":", 1)[1])


def listen_addrs(config):
    """The client addresses: `listen` is one `IP:port` or a list of them."""
    listen = config["listen"]
    return [str(a) for a in listen] if isinstance(listen, list) else [str(listen)]


def wildcard(addr):
    return addr.startswith(("0.0.0.0:", "[::]:"))


def service_listen_ports(config):
    """The ports of the client addresses a Service can reach (the wildcards)."""
    return sorted({port_of(a) for a in listen_addrs(config) if wildcard(a)})


def cpu_quantity(value):
    """A Kubernetes CPU quantity ("2", 2, "2000m", "1.5") in cores."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def selector_matches(where, selector, labels):
    if not selector:
        problem(where, "has no selector")
        return
    for key, value in selector.items():
        if labels.get(key) != value:
            problem(where, f"selector {key}={value} does not match the pod template labels {labels}")


# ---------------------------------------------------------------- manifests


def load_manifests(directory):
    docs = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, name)) as f:
            try:
                loaded = list(yaml.safe_load_all(f))
            except yaml.YAMLError as e:
                problem(name, f"not YAML: {e}")
                continue
        for i, doc in enumerate(d for d in loaded if d is not None):
            docs.append((f"{name}#{i}", name, doc))
    return docs


def check_common(where, doc):
    for field in ("apiVersion", "kind"):
        if not doc.get(field):
            problem(where, f"missing {field}")
    if doc.get("kind") != "Kustomization" and not dig(doc, "metadata.name"):
        problem(where, "missing metadata.name")


def container_port(container, ref):
    """The containerPort a probe or targetPort names (by name or number)."""
    for p in container.get("ports", []):
        if ref in (p.get("name"), p.get("containerPort")):
            return p.get("containerPort")
    return None


def check_probe(where, container, kind, metrics_port):
    probe = container.get(kind)
    if not probe:
        problem(where, f"container has no {kind}")
        return
    get = probe.get("httpGet")
    if not get:
        problem(where, f"{kind} is not an httpGet probe")
        return
    if get.get("path") != "/healthz":
        problem(where, f"{kind} path is {get.get('path')!r}, not /healthz")
    port = container_port(container, get.get("port"))
    if port != metrics_port:
        problem(where, f"{kind} port {get.get('port')!r} is {port}, not metrics.listen's {metrics_port}")


def check_deployment(where, doc, config, configmap_name):
    spec = doc.get("spec", {})
    labels = dig(spec, "template.metadata.labels", {}) or {}
    selector_matches(where, dig(spec, "selector.matchLabels"), labels)
    if (spec.get("replicas") or 1) < 2:
        problem(where, "runs fewer than 2 replicas")
    pod = dig(spec, "template.spec", {}) or {}
    containers = pod.get("containers") or []
    funnel = next((c for c in containers if c.get("name") == "funnel"), None)
    if funnel is None:
        problem(where, "has no container named funnel")
        return labels, None
    metrics_port = port_of(dig(config, "metrics.listen", "127.0.0.1:9633"))
    listen_ports = service_listen_ports(config)
    if not str(dig(config, "metrics.listen", "")).startswith(("0.0.0.0:", "[::]:")):
        problem(where, "the ConfigMap's metrics.listen is not 0.0.0.0 or [::]: probes cannot reach it")
    if not listen_ports:
        problem(where, "no address of the ConfigMap's listen is 0.0.0.0 or [::]: the Service cannot reach it")
    for port in (*listen_ports, metrics_port):
        if port not in [p.get("containerPort") for p in funnel.get("ports", [])]:
            problem(where, f"no containerPort {port} (from the ConfigMap)")
    check_probe(where, funnel, "readinessProbe", metrics_port)
    check_probe(where, funnel, "livenessProbe", metrics_port)
    annotations = dig(spec, "template.metadata.annotations", {}) or {}
    if "prometheus.io/port" in annotations and annotations["prometheus.io/port"] != str(metrics_port):
        problem(where, f"prometheus.io/port annotation is not {metrics_port}")
    cores = config.get("cores", 1)
    shard_count = len(cores) if isinstance(cores, list) else int(cores)
    for kind in ("requests", "limits"):
        cpu = dig(funnel, f"resources.{kind}.cpu")
        if cpu is None:
            problem(where, f"no resources.{kind}.cpu")
        elif cpu_quantity(cpu) != shard_count:
            problem(where, f"resources.{kind}.cpu is {cpu}, but the ConfigMap runs {shard_count} cores")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace <= 30:
        problem(where, f"terminationGracePeriodSeconds {grace} leaves no room for the 30 s graceful stop")
    secure = funnel.get("securityContext", {})
    if secure.get("allowPrivilegeEscalation") is not False:
        problem(where, "container securityContext must set allowPrivilegeEscalation: false")
    if dig(pod, "securityContext.runAsNonRoot") is not True:
        problem(where, "pod securityContext must set runAsNonRoot: true")
    if dig(pod, "securityContext.seccompProfile.type") == "RuntimeDefault":
        problem(where, "seccompProfile RuntimeDefault blocks io_uring on containerd 2.0 and later")
    # The config file must come from the ConfigMap, at the path in args.
    args = funnel.get("args", [])
    config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    mounted = False
    for m in funnel.get("volumeMounts", []):
        volume = volumes.get(m.get("name"), {})
        if dig(volume, "configMap.name") == configmap_name and config_path:
            if config_path == os.path.join(m.get("mountPath", ""), "funnel.yaml") and not m.get("subPath"):
                mounted = True
    if not mounted:
        problem(where, f"--config {config_path} is not funnel.yaml of ConfigMap {configmap_name} (directory mount)")
    return labels, funnel


def manifests(directory, out):
    docs = load_manifests(directory)
    for where, _, doc in docs:
        check_common(where, doc)
    by_kind = {}
    for where, name, doc in docs:
        by_kind.setdefault(doc.get("kind"), []).append((where, name, doc))
    for kind in ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget"):
        if len(by_kind.get(kind, [])) != 1:
            problem(directory, f"expected exactly one {kind}, found {len(by_kind.get(kind, []))}")
    finish("manifests")
    cm_where, _, cm = by_kind["ConfigMap"][0]
    text = dig(cm, "data", {}).get("funnel.yaml")
    if not text:
        problem(cm_where, "has no data.funnel.yaml")
        finish("manifests")
    config = yaml.safe_load(text)
    with open(out, "w") as f:
        f.write(text)
    dep_where, _, dep = by_kind["Deployment"][0]
    labels, funnel = check_deployment(dep_where, dep, config, dig(cm, "metadata.name"))
    svc_where, _, svc = by_kind["Service"][0]
    selector_matches(svc_where, dig(svc, "spec.selector"), labels)
    listen_ports = service_listen_ports(config)
    metrics_port = port_of(dig(config, "metrics.listen", "127.0.0.1:9633"))
    targets = set()
    for p in dig(svc, "spec.ports", []) or []:
        target = container_port(funnel or {}, p.get("targetPort", p.get("port")))
        if target is None:
            problem(svc_where, f"port {p.get('name')} targets {p.get('targetPort')!r}, which no container port is")
        targets.add(target)
    for port, what in [*((p, "listen") for p in listen_ports), (metrics_port, "metrics.listen")]:
        if port not in targets:
            problem(svc_where, f"no port targets the ConfigMap's {what} port {port}")
    pdb_where, _, pdb = by_kind["PodDisruptionBudget"][0]
    selector_matches(pdb_where, dig(pdb, "spec.selector.matchLabels"), labels)
    kustomizations = by_kind.get("Kustomization", [])
    if kustomizations:
        k_where, k_name, k = kustomizations[0]
        listed = set(k.get("resources", []))
        files = {name for _, name, _ in docs if name != k_name}
        if listed != files:
            problem(k_where, f"resources {sorted(listed)} differ from the manifests {sorted(files)}")
    finish("manifests")
    print(f"ok: {len(docs)} manifests; probes on :{metrics_port}/healthz; cpu = cores = {dig(config, 'cores')}")


# ------------------------------------------------------------ local config


def local_config(src, out, listen, admin, metrics, backend_port, cores_available):
    """The ConfigMap's settings with addresses on 127.0.0.1 and known credentials."""
    with open(src) as f:
        config = yaml.safe_load(f)
    config["listen"] = f"127.0.0.1:{listen}"
    cores = config.get("cores", 1)
    count = len(cores) if isinstance(cores, list) else int(cores)
    config["cores"] = max(1, min(count, int(cores_available)))
    for user in config["users"]:
        user.pop("password_hash", None)
        user["password"] = "check"
        user.pop("require_tls", None)
    config.get("client", {}).pop("tls", None)
    for backend in config["backends"]:
        backend["address"] = f"127.0.0.1:{backend_port}"
        backend["user"] = "funnel_check"
        backend["password"] = "check"
    config["admin"] = {"listen": f"127.0.0.1:{admin}", "user": "admin", "password": "check"}
    config["metrics"] = {"listen": f"127.0.0.1:{metrics}"}
    if "monitor" in config:
        config["monitor"].pop("user", None)
        config["monitor"].pop("password", None)
    with open(out, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    schemas = {u["default_schema"] for u in config["users"] if u.get("default_schema")}
    print(" ".join(sorted(schemas)))


# ------------------------------------------------------------------ scrape


def scrape_names(path):
    """Metric families (from # TYPE) and sample names in a scrape."""
    families, samples = {}, set()
    with open(path) as f:
        for line in f:
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()[:4]
                families[name] = kind
            elif line.strip() and not line.startswith("#"):
                samples.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return families, samples


def families(scrape):
    found, samples = scrape_names(scrape)
    for name, kind in FAMILIES.items():
        if name not in found:
            problem(scrape, f"metric {name} is missing")
        elif found[name] != kind:
            problem(scrape, f"metric {name} is a {found[name]}, expected a {kind}")
    finish("metric families")
    print(f"ok: all {len(FAMILIES)} documented metric families present ({len(samples)} sample names)")


# --------------------------------------------------------------- dashboard


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard(path, scrape, rules_out):
    with open(path) as f:
        try:
            dash = json.load(f)
        except json.JSONDecodeError as e:
            problem(path, f"not JSON: {e}")
            finish("dashboard")
    if dash.get("schemaVersion", 0) < 38:
        problem(path, f"schemaVersion {dash.get('schemaVersion')} is below 38")
    variables = {v.get("name"): v for v in dig(dash, "templating.list", []) or []}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problem(path, "needs a Prometheus data source variable named datasource")
    found, samples = scrape_names(scrape)
    known = set(found) | samples
    exprs, titles, ids = [], set(), set()
    for panel in panels_of(dash):
        title = panel.get("title", f"panel {panel.get('id')}")
        if panel.get("id") in ids:
            problem(path, f"panel id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        titles.add(title)
        targets = panel.get("targets") or []
        if not targets:
            problem(title, "has no query")
        if dig(panel, "datasource.uid") != "${datasource}":
            problem(title, "does not use the ${datasource} variable")
        for t in targets:
            expr = t.get("expr", "")
            names = set(re.findall(r"\bfunnel_[a-z0-9_]+\b", expr))
            if not names:
                problem(title, f"query names no funnel metric: {expr}")
            for name in sorted(names - known):
                problem(title, f"{name} is not in the real scrape")
            exprs.append((title, expr))
    wanted = ("funnel_queries_total", "funnel_query_duration_seconds_bucket", "funnel_backend_connections",
              "funnel_backlog_waiting", "funnel_backlog_timeouts_total", "funnel_errors_total",
              "funnel_backend_up", "funnel_backend_drained", "funnel_pinned_clients")
    used = " ".join(e for _, e in exprs)
    for name in wanted:
        if not re.search(rf"\b{name}\b", used):
            problem(path, f"no panel shows {name}")
    # Grafana's variables, replaced so promtool can parse the queries.
    rules = []
    for i, (title, expr) in enumerate(exprs):
        concrete = expr.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")
        rules.append({"record": f"dashboard:query_{i}", "expr": concrete, "labels": {"panel": title}})
    with open(rules_out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "funnel-dashboard", "rules": rules}]}, f, sort_keys=False)
    finish("dashboard")
    print(f"ok: {len(titles)} panels, {len(exprs)} queries, every metric they name is in the scrape")


def main(argv):
    cmd, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if cmd == "manifests" and len(args) == 2:
        manifests(*args)
    elif cmd == "local-config" and len(args) == 7:
        local_config(*args)
    elif cmd == "families" and len(args) == 1:
        families(*args)
    elif cmd == "dashboard" and len(args) == 3:
        dashboard(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
