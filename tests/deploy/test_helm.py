"""The Helm chart docker/helm/gatewatch: `helm lint --strict` and `helm template` pass, and the
rendered manifests hold what a cluster needs: each process mounts only its own private key (an init
container's owner-only copy of a Secret volume projecting that one key; no process runs as root),
/healthz and /readyz probes, a PodDisruptionBudget per workload, and container args the CLI accepts.

helm comes from ~/.cache/gatewatch/bin/helm-<HELM_VERSION>; when missing it is built with
`go install helm.sh/helm/v3/cmd/helm@<HELM_VERSION>` (Go module proxy, a few minutes, once). Without
Go the test fails saying so: it never skips."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from tests.unit.test_docker import _resolve

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "docker/helm/gatewatch"
HELM_VERSION = "v3.21.4"
HELM = Path.home() / ".cache/gatewatch/bin" / f"helm-{HELM_VERSION}"
KEYED = {"decide": "decider", "executor": "executor", "worm": "log", "witness-1": "witness-1",
         "witness-2": "witness-2"}
WORKLOADS = {"ingest", "signals", "decide", "executor", "worm", "witness-1", "witness-2", "serve"}
# one xdist worker builds helm when it is missing (measured ~200 s here, beyond the suite's 300 s
# default once the tests' own time is added): the module runs on one worker with a longer timeout
pytestmark = [pytest.mark.xdist_group("helm"), pytest.mark.timeout(1800)]


def helm_binary() -> Path:
    if HELM.is_file() and os.access(HELM, os.X_OK):
        return HELM
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"no helm at {HELM} and no Go toolchain to build it "
                    f"(go install helm.sh/helm/v3/cmd/helm@{HELM_VERSION})")
    HELM.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=HELM.parent) as gobin:
        r = subprocess.run([go, "install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"],
                           env=dict(os.environ, GOBIN=gobin, GOFLAGS="-mod=mod"), capture_output=True,
                           text=True, timeout=1500)
        if r.returncode != 0:
            pytest.fail(f"building helm {HELM_VERSION} failed:\n{r.stderr[-3000:]}")
        os.replace(Path(gobin) / "helm", HELM)  # atomic: a parallel run sees no half-written binary
    return HELM


def helm(*args: str) -> str:
    r = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"helm {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def render(*sets: str) -> list[dict]:
    out = helm("template", "gw", str(CHART), "--namespace", "release-safety", *[a for s in sets for a in ("--set", s)])
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs, kind) -> dict[str, dict]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in docs if d["kind"] == kind}


def test_lint_strict():
    out = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out


@pytest.fixture(scope="module")
def docs():
    return render()


def test_every_workload_and_its_pdb(docs):
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == WORKLOADS
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert set(pdbs) == WORKLOADS
    for name, dep in deployments.items():
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        sel = pdbs[name]["spec"]["selector"]["matchLabels"]
        assert sel.items() <= pod_labels.items(), f"{name}: the PDB selects other pods"
        assert ("maxUnavailable" in pdbs[name]["spec"]) != ("minAvailable" in pdbs[name]["spec"])
    svc = by_kind(docs, "Service")["serve"]
    assert svc["spec"]["selector"].items() <= deployments["serve"]["spec"]["template"]["metadata"]["labels"].items()


def test_probes_on_healthz_and_readyz(docs):
    for name, dep in by_kind(docs, "Deployment").items():
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["port"] in ports, f"{name}: {probe} on an unnamed port"
        # the port the probes hit is the one the process listens on, on every interface of the pod
        port = str(ports[c["livenessProbe"]["httpGet"]["port"]])
        assert port == c["args"][c["args"].index("--metrics-port" if name != "serve" else "--port") + 1], name
        env = {e["name"]: e.get("value") for e in c["env"]}
        if name == "executor":
            assert env["GATEWATCH_EXECUTOR_HTTP_HOST"] == "0.0.0.0"
        elif name == "serve":
            assert c["args"][c["args"].index("--host") + 1] == "0.0.0.0" and "--token-file" in c["args"]
        else:
            assert env["GATEWATCH_HTTP_HOST"] == "0.0.0.0"


def test_each_worker_mounts_only_its_own_private_key(docs):
    for name, dep in by_kind(docs, "Deployment").items():
        spec = dep["spec"]["template"]["spec"]
        (c,) = spec["containers"]
        inits = spec.get("initContainers") or []
        volumes = {v["name"]: v for v in spec["volumes"]}
        key_mounts = [m for m in c["volumeMounts"] if m["mountPath"].endswith(".key")]
        secret_vols = [v for v in volumes.values() if "secret" in v and v["secret"]["secretName"] == "gatewatch-keys"]
        # no process runs as root: a keyed one reads the init container's copy of its key
        assert c["securityContext"]["runAsUser"] == 10001 and c["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["fsGroup"] == 10001, name  # the state volume is writable by 10001
        if name not in KEYED:
            assert not key_mounts and not secret_vols and not inits, f"{name} holds a private key it does not use"
            continue
        role = KEYED[name]
        assert [m["mountPath"] for m in key_mounts] == [f"/keys/{role}.key"], name
        (m,) = key_mounts
        assert m["subPath"] == f"{role}.key" and m.get("readOnly") is True  # a regular file, not a symlink
        assert volumes[m["name"]]["emptyDir"]["medium"] == "Memory", name  # the copy never reaches a disk
        (secret,) = secret_vols
        assert secret["secret"]["defaultMode"] == 0o400, name
        assert secret["secret"]["items"] == [{"key": f"{role}.key", "path": f"{role}.key"}], f"{name}: projects other keys"
        assert secret["name"] not in {x["name"] for x in c["volumeMounts"]}, f"{name}: the process mounts the Secret"
        (init,) = inits
        mounts = {x["mountPath"]: x["name"] for x in init["volumeMounts"]}
        assert mounts == {"/secret": secret["name"], "/owned": m["name"]}, name
        sc = init["securityContext"]
        assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]} and sc["allowPrivilegeEscalation"] is False
        assert init["command"][:2] == ["sh", "-ec"] and f"/secret/{role}.key" in init["command"][2], name
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["GATEWATCH_KEYS_DIR"] == "/keys"
        pubs = {x["mountPath"] for x in c["volumeMounts"] if x["mountPath"].endswith(".pub")}
        assert {"/keys/decider.pub", "/keys/executor.pub", "/keys/log.pub"} <= pubs


@pytest.mark.parametrize("secret_mode", [0o400, 0o440])  # 0440: the Secret's file under the pods' fsGroup
def test_the_init_containers_copy_is_a_key_the_process_loads(docs, secret_mode):
    """The rendered copy command, run here as the init container runs (uid 0, no capability but
    CHOWN) on a root-owned Secret file, leaves a key that uid 10001 loads (owner-only, regular)."""
    if os.geteuid() != 0:
        pytest.fail("this test runs the init container's command as root with CAP_CHOWN only: run it as root")
    dep = by_kind(docs, "Deployment")["decide"]
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    with tempfile.TemporaryDirectory(dir="/tmp") as d:  # pytest's tmp_path is closed to uid 10001
        os.chmod(d, 0o755)
        _run_the_copy(init, Path(d), secret_mode)


def _run_the_copy(init: dict, tmp_path: Path, secret_mode: int) -> None:
    (secret, owned, keys) = (tmp_path / "secret", tmp_path / "owned", tmp_path / "keys")
    init_keys(keys, roles=("decider",))
    secret.mkdir()
    (secret / "decider.key").write_bytes((keys / "decider.key").read_bytes())
    os.chmod(secret / "decider.key", secret_mode)
    owned.mkdir()
    os.chmod(owned, 0o777)  # an emptyDir's directory
    script = init["command"][2].replace("/secret/", f"{secret}/").replace("/owned/", f"{owned}/")
    subprocess.run(["setpriv", "--reuid=0", "--bounding-set=-all,+chown", "--inh-caps=-all", "--", *init["command"][:2],
                    script], check=True, timeout=30)
    st = (owned / "decider.key").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (10001, 10001, 0o400)
    (owned / "decider.pub").write_bytes((keys / "decider.pub").read_bytes())
    os.chmod(owned / "decider.pub", 0o644)
    expected = bytes(load_signing_key("decider", keys).verify_key).hex()  # also imports what loading needs
    assert _load_as_uid_10001(owned) == expected
    # a key the process cannot reach (its directory closed to it) is a clear refusal, not a crash
    os.chmod(tmp_path, 0o700)
    refusal = _load_as_uid_10001(owned)
    assert "GatewatchError: key file" in refusal and "cannot open (Permission denied)" in refusal, refusal
    os.chmod(tmp_path, 0o755)
    # without CHOWN the copy fails, loudly: the pod does not start with a key it cannot read
    (owned / "decider.key").unlink()
    r = subprocess.run(["setpriv", "--reuid=0", "--bounding-set=-all", "--inh-caps=-all", "--", *init["command"][:2],
                        script], capture_output=True, timeout=30)
    assert r.returncode != 0


def _load_as_uid_10001(keys_dir: Path) -> str:
    """The decider key's public half as hex, loaded by a process running as uid/gid 10001 with no
    supplementary groups (the pods' user), or the error it raised. A fork of this process, with the
    code already imported: a fresh interpreter as uid 10001 could not import gatewatch from a
    checkout closed to other users (a clone in `mktemp -d`)."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid 10001, load, report, exit without running pytest's cleanup
        os.close(rd)
        try:
            os.setgroups([])
            os.setresgid(10001, 10001, 10001)
            os.setresuid(10001, 10001, 10001)
            out = bytes(load_signing_key("decider", keys_dir).verify_key).hex()
        except BaseException as e:  # noqa: BLE001 (any failure is the answer)
            out = f"{type(e).__name__}: {e}"
        os.write(wr, out.encode())
        os._exit(0)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


def test_args_are_cli_commands_and_config_is_mounted(docs):
    cms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    policies = cms["gw-gatewatch-policies"]["data"]
    assert policies == {p.name: p.read_text() for p in (ROOT / "configs/policies").glob("*.yml")}, \
        "docker/helm/gatewatch/files/policies drifted from configs/policies"
    assert cms["gw-gatewatch-executor"]["data"]["executor.yml"] == (ROOT / "configs/executor.yml").read_text()
    for name, dep in by_kind(docs, "Deployment").items():
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        cmd = _resolve(c["args"])
        assert cmd is not None, f"{name}: no CLI command {c['args']}"
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert {w for w in c["args"] if w.startswith("--")} <= opts, f"{name}: {c['args']}"
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        for flag in ("--policy", "--config"):
            if flag in c["args"]:
                path = c["args"][c["args"].index(flag) + 1]
                assert any(path == mp or path.startswith(mp + "/") for mp in mounts), f"{name}: {flag} {path}"
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_topics_job_runs_before_the_workers(docs):
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    (c,) = job["spec"]["template"]["spec"]["containers"]
    cmd = _resolve(c["args"])
    assert cmd is not None and cmd.name == "create"
    assert {w for w in c["args"] if w.startswith("--")} <= {o for p in cmd.params for o in p.opts}
    assert {e["name"] for e in c["env"]} >= {"KAFKA_BOOTSTRAP_SERVERS", "GATEWATCH_TOPIC_PREFIX"}
    assert not [d for d in render("topics.create=false") if d["kind"] == "Job"]


def test_overrides_render(docs):
    more = render("stages.signals.replicas=3", "persistence.accessMode=ReadWriteMany", "serve.tokenSecret=mytoken",
                  "podDisruptionBudget.enabled=false", "policies.gate\\.yml=rules: []")
    deps = by_kind(more, "Deployment")
    assert deps["signals"]["spec"]["replicas"] == 3
    assert deps["signals"]["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not by_kind(more, "PodDisruptionBudget")
    assert not [d for d in more if d["kind"] == "Secret"]  # the token Secret is the operator's
    (tok,) = [v for v in deps["serve"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "token"]
    assert tok["secret"]["secretName"] == "mytoken"
    assert "--flagger-without-token" not in deps["serve"]["spec"]["template"]["spec"]["containers"][0]["args"]
    flagger = by_kind(render("serve.flaggerWithoutToken=true"), "Deployment")["serve"]
    args = flagger["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-1] == "--flagger-without-token" and "--token-file" in args  # the other paths keep the token
    assert "--flagger-without-token" in {o for p in _resolve(args).params for o in getattr(p, "opts", [])}
    cm = {d["metadata"]["name"]: d for d in more if d["kind"] == "ConfigMap"}["gw-gatewatch-policies"]
    assert cm["data"]["gate.yml"].strip() == "rules: []" and "project.yml" in cm["data"]
