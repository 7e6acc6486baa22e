"""Policy checks on rendered Kubernetes manifests (run by scripts/check-deploy).

Schema validation says the objects are well formed; these checks say they do
what deploy/README.md promises: zero-downtime shutdown timing, gRPC probes on
the health service, the restricted security context, selectors that match,
and, where transformer models are configured (overlay rust-bert), a read-only
model volume and libtorch threads that fit the CPU limit.

Usage: python deploy/policy_check.py RENDERED.yaml...   (exit 1 on any failure)
"""
import sys

import yaml

GRPC_PORT = 50051
UID = 65532


def cpu_cores(q):
    """A Kubernetes CPU quantity ("4", "500m", 2) in cores."""
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def mem_bytes(q):
    """A Kubernetes memory quantity ("4Gi", "512Mi", "1G", 1048576) in bytes."""
    q = str(q)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix in sorted(units, key=len, reverse=True):
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * units[suffix]
    return float(q)


def check_transformers(data, pod, c, err):
    """The rust-bert overlay: models on a read-only mounted volume, libtorch
    threads within the CPU limit, room to load and run BERT-size models."""
    dirs = {k: data[k] for k in ("ARTICLE_ANALYZER_BERT_NER", "ARTICLE_ANALYZER_BERT_NLI") if data.get(k)}
    if not dirs:
        return
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for key, path in dirs.items():
        mount = next((m for m in c.get("volumeMounts", [])
                      if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")), None)
        if mount is None:
            err(f"{key}={path} is on no mounted volume (transformer models are mounted, not baked)")
            continue
        if mount.get("readOnly") is not True:
            err(f"the volume holding {key} ({mount['mountPath']}) must be mounted readOnly")
        if "emptyDir" in volumes.get(mount["name"], {}) and not pod.get("initContainers"):
            err(f"{key} is on an emptyDir that no initContainer fills")

    limits = c.get("resources", {}).get("limits", {})
    threads = int(data.get("ARTICLE_ANALYZER_TORCH_THREADS", "0"))
    workers = int(data.get("ARTICLE_ANALYZER_WORKERS", "0"))
    if threads < 1:
        err("ARTICLE_ANALYZER_TORCH_THREADS must be set with transformer models "
            "(libtorch's default is one thread per node core, not per CPU limit)")
    elif "cpu" in limits and workers * threads > cpu_cores(limits["cpu"]):
        err(f"ARTICLE_ANALYZER_WORKERS {workers} x ARTICLE_ANALYZER_TORCH_THREADS {threads} "
            f"exceeds the CPU limit {limits['cpu']}")
    if "memory" in limits and mem_bytes(limits["memory"]) < 2 * 2**30:
        err(f"memory limit {limits['memory']} is too small for transformer models (at least 2Gi)")
    sp = c.get("startupProbe", {})
    if sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3) < 180:
        err("startupProbe must allow at least 180 s to load transformer models")


def check(path, errors):
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def err(msg):
        errors.append(f"{path}: {msg}")

    def one(kind):
        objs = by_kind.get(kind, [])
        if len(objs) != 1:
            err(f"expected exactly one {kind}, found {len(objs)}")
            return None
        return objs[0]

    dep, cm = one("Deployment"), one("ConfigMap")
    hpa, pdb, netpol = one("HorizontalPodAutoscaler"), one("PodDisruptionBudget"), one("NetworkPolicy")
    services = by_kind.get("Service", [])
    if None in (dep, cm, hpa, pdb, netpol):
        return

    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in sel.items()):
        err("Deployment selector does not match its pod template labels")
    if "replicas" in spec:
        err("Deployment sets spec.replicas; the HPA owns the replica count")

    ru = spec.get("strategy", {}).get("rollingUpdate", {})
    if spec.get("strategy", {}).get("type") != "RollingUpdate" or ru.get("maxUnavailable") != 0:
        err("rolling update must have maxUnavailable: 0")

    (c,) = pod["containers"]
    if c.get("envFrom", [{}])[0].get("configMapRef", {}).get("name") != cm["metadata"]["name"]:
        err("container envFrom does not reference the generated ConfigMap")
    data = cm["data"]
    if not data.get("ARTICLE_ANALYZER_ADDR", "").endswith(f":{GRPC_PORT}"):
        err(f"ARTICLE_ANALYZER_ADDR must listen on {GRPC_PORT}")
    if data.get("ARTICLE_ANALYZER_LOG_FORMAT") != "json":
        err("ARTICLE_ANALYZER_LOG_FORMAT must be json")

    # Shutdown timing: preStop sleep + drain must fit in the grace period.
    drain = int(data.get("ARTICLE_ANALYZER_DRAIN_SECS", "25"))
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if sleep is None:
        err("container needs a preStop sleep action")
        sleep = 0
    if not grace > sleep + drain:
        err(f"terminationGracePeriodSeconds {grace} must exceed preStop {sleep}s + drain {drain}s")

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c.get(probe)
        if not p or p.get("grpc", {}).get("port") != GRPC_PORT:
            err(f"{probe} must be a native gRPC probe on port {GRPC_PORT}")
    sp = c.get("startupProbe", {})
    if sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3) < 60:
        err("startupProbe must allow at least 60 s for the model to load")

    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    for name, sc in (("pod", psc), ("container", csc)):
        if sc.get("runAsNonRoot") is not True or sc.get("runAsUser") != UID:
            err(f"{name} securityContext must run as non-root UID {UID}")
        if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            err(f"{name} securityContext needs seccompProfile RuntimeDefault")
    if csc.get("readOnlyRootFilesystem") is not True:
        err("readOnlyRootFilesystem must be true")
    if csc.get("allowPrivilegeEscalation") is not False:
        err("allowPrivilegeEscalation must be false")
    if csc.get("capabilities", {}).get("drop") != ["ALL"]:
        err("capabilities must drop ALL")
    res = c.get("resources", {})
    for k in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(res.get(k, {})):
            err(f"resources.{k} needs cpu and memory")

    # Services: one ClusterIP, one headless, both selecting the pods on 50051.
    kinds = sorted("headless" if s["spec"].get("clusterIP") == "None" else s["spec"].get("type", "ClusterIP")
                   for s in services)
    if kinds != ["ClusterIP", "headless"]:
        err(f"expected one ClusterIP and one headless Service, found {kinds}")
    for s in services:
        if any(labels.get(k) != v for k, v in s["spec"]["selector"].items()):
            err(f"Service {s['metadata']['name']} selector does not match the pods")
        if [p["port"] for p in s["spec"]["ports"]] != [GRPC_PORT]:
            err(f"Service {s['metadata']['name']} must expose {GRPC_PORT} only")

    ref = hpa["spec"]["scaleTargetRef"]
    if (ref["kind"], ref["name"]) != ("Deployment", dep["metadata"]["name"]):
        err("HPA does not target the Deployment")
    if hpa["spec"]["minReplicas"] > hpa["spec"]["maxReplicas"]:
        err("HPA minReplicas > maxReplicas")
    if any(pdb["spec"]["selector"]["matchLabels"].get(k) != v for k, v in sel.items()):
        err("PDB selector does not match the Deployment selector")
    if "minAvailable" in pdb["spec"] and pdb["spec"]["minAvailable"] >= hpa["spec"]["minReplicas"]:
        err("PDB minAvailable must be below HPA minReplicas, or no node could ever drain")

    ports = sorted(p["port"] for rule in netpol["spec"].get("ingress", []) for p in rule.get("ports", []))
    if netpol["spec"].get("policyTypes") != ["Ingress"] or ports != sorted([GRPC_PORT, 9090]):
        err(f"NetworkPolicy must allow ingress on {GRPC_PORT} and 9090 only, found {ports}")

    check_transformers(data, pod, c, err)

    ann = spec["template"]["metadata"].get("annotations", {})
    if ann.get("prometheus.io/port") != "9090":
        err("pod template needs prometheus.io/* annotations for the metrics port 9090")


def main(paths):
    errors = []
    for p in paths:
        check(p, errors)
    for e in errors:
        print(f"check-deploy: FAIL: {e}")
    print(f"check-deploy: policy checks on {len(paths)} renderings: "
          + ("ok" if not errors else f"{len(errors)} failures"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
