#!/usr/bin/env bash
# `make container-test`: build the image with Podman and run stages in it, then check them against the
# same stages run on the host. For a machine like the CI's (Debian bookworm, root, no Docker daemon, no
# registry): installs Podman and friends if absent (apt-get), uses its OWN containers.conf (the system's is
# never touched), builds the debootstrap base and the image offline (--network=none) from the host's
# wheelhouse, then, in two throwaway clones of this commit (same tiny settings), runs
#   dvc repro $STAGES       on the host             (UPLR_RUNNER=local)
#   dvc repro $STAGES       in the image            (UPLR_RUNNER=docker UPLR_ENGINE=podman)
# and asserts: every output exists and belongs to the calling user, the MLflow runs of the container
# carry the id of the image just built (and its base), and the DVC metrics of both runs are equal.
#
# Settings: CONTAINER_TEST_STAGES (default below), CONTAINER_TEST_SET (params set in both clones),
# CONTAINER_TEST_KEEP=1 keeps the clones (printed), CONTAINER_TEST_REBUILD_BASE=1 rebuilds the base.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stages=${CONTAINER_TEST_STAGES:-generate class_stats train_source_only@0 evaluate_source_only@0}
settings=${CONTAINER_TEST_SET:-generate.n_source=64 generate.n_target_train=48 generate.n_target_val=32 train.iterations=20 train.checkpoint_every=10 train.log_every=5}
base=localhost/uplr-base:bookworm
t_start=$(date +%s)
say() { printf 'container-test [%4ss]: %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
die() { echo "container-test: FAILED: $*" >&2; exit 1; }

# 1. the tools (Debian's packages)
missing=()
for tool in podman buildah runc catatonit debootstrap; do
  command -v "$tool" >/dev/null || [ -x "/usr/bin/$tool" ] || [ -x "/usr/libexec/podman/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    podman buildah runc catatonit debootstrap >/dev/null
fi

# 2. our own containers.conf: setrlimit is refused here (default_ulimits), crun refuses the cgroup
#    v1/v2 hybrid (runc), and there is no systemd (cgroupfs, events to a file)
conf_dir=$root/build/container-test
mkdir -p "$conf_dir"
cat >"$conf_dir/containers.conf" <<'CONF'
# written by docker/container-test.sh for this test only (CONTAINERS_CONF); the system's is not read
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$conf_dir/containers.conf
podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null || die "podman does not work with $CONTAINERS_CONF"

# 3. the base (debootstrap) and the image, built with no network: the wheels come from build/wheelhouse
if [ "${CONTAINER_TEST_REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$base"; then
  say "building the base $base (debootstrap)"
  t0=$(date +%s); make --no-print-directory docker-base DOCKER=podman; t_base=$(( $(date +%s) - t0 ))
  say "base built in ${t_base}s"
else
  say "base $base exists (CONTAINER_TEST_REBUILD_BASE=1 rebuilds it)"
fi
say "building the image (podman, --network=none, base $base)"
t0=$(date +%s)
make --no-print-directory docker-build DOCKER=podman BASE_IMAGE="$base" DOCKER_BUILD_ARGS="--network=none --quiet" >/dev/null
t_image=$(( $(date +%s) - t0 ))
ref=$(cat docker/IMAGE)
image_id=sha256:$(podman image inspect --format '{{.Id}}' "$ref" | sed 's/^sha256://')
revision=$(podman image inspect --format '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$ref")
[ "$revision" = "$(git rev-parse HEAD)" ] || die "the image's revision label is $revision, HEAD is $(git rev-parse HEAD)"
size=$(podman image inspect --format '{{.Size}}' "$ref")
say "image $ref $image_id, $(( size / 1000000 )) MB, built in ${t_image}s"

# 4. two clones of this checkout
work=$(mktemp -d "${TMPDIR:-/tmp}/uplr-container-test.XXXXXX")
if [ "${CONTAINER_TEST_KEEP:-0}" = 1 ]; then say "keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
export PATH=$root/.venv/bin:$PATH OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 UPLR_DOCKER_GPUS=none
unset MLFLOW_TRACKING_URI UPLR_RUNNER UPLR_ENGINE UPLR_IMAGE_REF
for side in host container; do
  # a self-contained clone (the container sees only the clone), plus the uncommitted changes, if any
  git clone --quiet "$root" "$work/$side"
  git -C "$work/$side" checkout --quiet --detach "$(git rev-parse HEAD)"
  git diff HEAD --binary | git -C "$work/$side" apply --allow-empty
  (cd "$work/$side" && python - "$settings" <<'PY'
import sys
import yaml
params = yaml.safe_load(open("params.yaml"))
for item in sys.argv[1].split():
    key, value = item.split("=", 1)
    *path, last = key.split(".")
    node = params
    for part in path:
        node = node[part]
    if last not in node:
        sys.exit(f"container-test: params.yaml has no {key}: fix CONTAINER_TEST_SET")
    node[last] = yaml.safe_load(value)
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
PY
  )
done
touch "$work/.start"

# 5. the stages, on the host and in the image (the clone's code on PYTHONPATH in both)
# shellcheck disable=SC2086
(cd "$work/host" && PYTHONPATH=$work/host UPLR_PIPELINE_RUN=container-test-host \
   dvc repro --quiet $stages) >"$work/host.log" 2>&1 || { tail -n 30 "$work/host.log"; die "the host run failed"; }
say "host run done"
# shellcheck disable=SC2086
(cd "$work/container" && PYTHONPATH=$work/container UPLR_PIPELINE_RUN=container-test-container \
   UPLR_RUNNER=docker UPLR_ENGINE=podman dvc repro --quiet $stages) >"$work/container.log" 2>&1 \
  || { tail -n 30 "$work/container.log"; die "the container run failed"; }
say "container run done"

# 6. the checks
python - "$work" "$image_id" "$base" "$stages" <<'PY'
import json, os, subprocess, sys
from pathlib import Path

work, image_id, base, stages = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split()
ctr, host = work / "container", work / "host"
uid, fails = os.getuid(), []

def dvc(cwd, *args):
    return subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout

# outputs exist (dvc status clean for the stages) and every file the run wrote belongs to the caller
for side in (host, ctr):
    status = json.loads(dvc(side, "status", "--json", *stages) or "{}")
    if status:
        fails.append(f"{side.name}: dvc status is not clean after the run: {status}")
start = (work / ".start").stat().st_mtime
foreign = [str(p.relative_to(ctr)) for p in ctr.rglob("*") if not p.is_symlink()
           and p.stat().st_mtime >= start and p.stat().st_uid != uid]
if foreign:
    fails.append(f"{len(foreign)} files written in the container do not belong to uid {uid}: {foreign[:5]}")
written = sum(1 for p in ctr.rglob("*") if p.is_file() and p.stat().st_mtime >= start and ".git" not in p.parts)

# the MLflow runs of the container run: one per stage, each with the image just built and its base
import mlflow  # noqa: E402
client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{ctr / 'mlflow.db'}")
runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
by_stage = {r.data.tags.get("uplr.dvc_stage"): r for r in runs}
for stage in stages:
    run = by_stage.get(stage)
    if run is None:
        fails.append(f"no MLflow run for stage {stage} (runs: {sorted(map(str, by_stage))})")
        continue
    tags = run.data.tags
    if tags.get("uplr.image_id") != image_id:
        fails.append(f"{stage}: uplr.image_id={tags.get('uplr.image_id')}, the image built is {image_id}")
    if not tags.get("uplr.image_base", "").startswith(base + "@sha256:"):
        fails.append(f"{stage}: uplr.image_base={tags.get('uplr.image_base')}, expected {base}@sha256:...")
    if run.info.status != "FINISHED":
        fails.append(f"{stage}: MLflow run {run.info.run_id} is {run.info.status}")

# the metrics: equal on both sides; the outputs' hashes, for the record
m_host = json.loads(dvc(host, "metrics", "show", "--json"))
m_ctr = json.loads(dvc(ctr, "metrics", "show", "--json"))
def flat(d):
    # the metrics files that exist (dvc metrics show lists every declared one, most of them not run)
    files = d.get("", d).get("data") or {}
    return {k: v["data"] for k, v in files.items() if isinstance(v, dict) and "data" in v}
mh, mc = flat(m_host.get("workspace", m_host)), flat(m_ctr.get("workspace", m_ctr))
if not mh:
    fails.append("no DVC metrics on the host side")
if mh != mc:
    fails.append(f"metrics differ: host {json.dumps(mh)[:400]} container {json.dumps(mc)[:400]}")

def out_hashes(side):
    import yaml
    lock = yaml.safe_load((side / "dvc.lock").read_text())["stages"]
    return {o["path"]: o.get("md5") for s in stages for o in lock.get(s, {}).get("outs", [])}
oh, oc = out_hashes(host), out_hashes(ctr)
same = sorted(p for p in oh if oh[p] == oc.get(p))
diff = sorted(p for p in oh if oh[p] != oc.get(p))


def equal_content(a, b):
    """For files whose bytes differ: are the arrays / tensors in them equal? (None: not compared)"""
    if a.suffix == ".npz":
        import numpy as np
        x, y = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)
    if a.suffix == ".pt":
        import torch

        def same(u, v):
            if isinstance(u, dict):
                return isinstance(v, dict) and u.keys() == v.keys() and all(same(u[k], v[k]) for k in u)
            if isinstance(u, (list, tuple)):
                return type(u) is type(v) and len(u) == len(v) and all(map(same, u, v))
            if torch.is_tensor(u):
                return torch.is_tensor(v) and torch.equal(u, v)
            return u == v
        return same(torch.load(a, map_location="cpu", weights_only=False),
                    torch.load(b, map_location="cpu", weights_only=False))
    return None


content = {p: equal_content(host / p, ctr / p) for p in diff if (host / p).is_file()}
summary = {"stages": stages, "image_id": image_id, "files_written_in_container": written,
           "metrics_host": mh, "metrics_container": mc, "outputs_identical": same, "outputs_differing": diff,
           "differing_outputs_with_equal_arrays": content}
(work.parent / "uplr-container-test.json").write_text(json.dumps(summary, indent=1))
for f in sorted(set(mh) | set(mc)):
    print(f"container-test: metrics {f}: host == container: {mh.get(f) == mc.get(f)}")
print(f"container-test: outputs with identical md5 on both sides: {same}; differing: {diff} (files that embed"
      " a temp name, a timestamp or the clone's path differ byte-wise even when their content is equal)")
print(f"container-test: of those, arrays/tensors equal (None: not compared): {content}")
if fails:
    print("\n".join(f"container-test: FAILED: {f}" for f in fails), file=sys.stderr)
    sys.exit(1)
PY
say "passed: ${stages} in $ref ($image_id) == host; total $(( $(date +%s) - t_start ))s"
