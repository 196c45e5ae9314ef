# The pinned container (docker/README.md). Stages run in it with UPLR_RUNNER=docker (uplr/docker_runner.py).
# The tag comes from docker/IMAGE; the build passes the lock's sha256, which the Dockerfile checks and
# records as a label. DOCKER_BUILD_ARGS adds options (e.g. --build-arg UID=$$(id -u), --pull, --progress=plain).
#
# The revision is also given as --label: Buildah's layer cache reuses a LABEL step whose build arg
# changed (measured with Podman 4.3: the image kept the previous commit), a --label is applied last.
# DOCKER: the engine, docker or podman (default: UPLR_ENGINE, else docker if installed, else podman);
#   with Podman the build uses --format docker (keeps the Dockerfile's SHELL).
# BASE_IMAGE: the base (default: the Dockerfile's pinned python:3.11-slim-bookworm); `make docker-base`
#   builds localhost/uplr-base:bookworm with debootstrap for machines that cannot pull it:
#   make docker-base docker-build BASE_IMAGE=localhost/uplr-base:bookworm
# The wheels are downloaded on the host (build/wheelhouse) by pip with the host's own configuration
# (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_CERT, pip.conf, a proxy): nothing site-specific is written
# here or enters the image; the build itself installs offline from that folder, hash-checked.
DOCKER ?= $(or $(UPLR_ENGINE),$(if $(shell command -v docker 2>/dev/null),docker,podman))
DOCKER_BUILD_ARGS ?=
BASE_IMAGE ?=
BASE_LOCAL := localhost/uplr-base:bookworm
WHEELHOUSE := build/wheelhouse
_IS_PODMAN = $(filter podman,$(notdir $(DOCKER)))
# the base's identity for the labels: the digest in the reference, else the local image's id
# (Docker writes the id as sha256:<hex>, Podman as bare hex)
_BASE_ID = $(if $(findstring @sha256:,$(BASE_IMAGE)),,$(shell $(DOCKER) image inspect --format '{{.Id}}' $(BASE_IMAGE) 2>/dev/null))
_BASE_DIGEST = $(if $(_BASE_ID),sha256:$(patsubst sha256:%,%,$(_BASE_ID)))

.PHONY: docker-build docker-base docker-pin lint-docker wheelhouse

# the runtime lock's wheels, downloaded (or copied from pip's cache) and hash-checked on the host
$(WHEELHOUSE)/.lock-sha256: requirements.lock | $(STAMP)
	@mkdir -p $(WHEELHOUSE)
	$(VENV)/bin/pip download --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
	  -r requirements.lock -d $(WHEELHOUSE)
	sha256sum requirements.lock | cut -d ' ' -f 1 > $@

wheelhouse: $(WHEELHOUSE)/.lock-sha256 ## download the runtime lock's wheels into build/wheelhouse (host pip config)

docker-build: $(WHEELHOUSE)/.lock-sha256 ## build the pinned image (tag from docker/IMAGE) from requirements.lock
	$(DOCKER) build -f docker/Dockerfile -t "$$(cat docker/IMAGE)" $(if $(_IS_PODMAN),--format docker) \
	  --build-arg LOCK_SHA256="$$(sha256sum requirements.lock | cut -d ' ' -f 1)" \
	  --build-arg VERSION="$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)" \
	  --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	  --label org.opencontainers.image.revision="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE="$(BASE_IMAGE)" --build-arg BASE_DIGEST="$(_BASE_DIGEST)") \
	  $(DOCKER_BUILD_ARGS) .

docker-base: ## build localhost/uplr-base:bookworm (debootstrap, Debian's python3.11; needs root) for offline builds
	docker/build-base.sh $(DOCKER) $(BASE_LOCAL)

docker-pin: setup ## re-resolve the base image's digest from its registry and rewrite docker/Dockerfile's default
	$(VENV)/bin/python scripts/docker_pin.py docker/Dockerfile

lint-docker: setup ## hadolint on docker/Dockerfile (config: .hadolint.yaml)
	$(VENV)/bin/hadolint --config .hadolint.yaml docker/Dockerfile
