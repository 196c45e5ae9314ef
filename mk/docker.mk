# The pinned container (docker/README.md). Stages run in it with UPLR_RUNNER=docker (uplr/docker_runner.py).
# The tag comes from docker/IMAGE; the build passes the lock's sha256, which the Dockerfile checks and
# records as a label. DOCKER_BUILD_ARGS adds options (e.g. --build-arg UID=$$(id -u), --pull, --progress=plain).
DOCKER ?= docker
DOCKER_BUILD_ARGS ?=

.PHONY: docker-build docker-pin lint-docker

docker-build: ## build the pinned image (tag from docker/IMAGE) from requirements.lock
	$(DOCKER) build -f docker/Dockerfile -t "$$(cat docker/IMAGE)" \
	  --build-arg LOCK_SHA256="$$(sha256sum requirements.lock | cut -d ' ' -f 1)" \
	  --build-arg VERSION="$$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)" \
	  --build-arg REVISION="$$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
	  $(DOCKER_BUILD_ARGS) .

docker-pin: setup ## re-resolve the base image's digest from its registry and rewrite docker/Dockerfile's FROM
	$(VENV)/bin/python scripts/docker_pin.py docker/Dockerfile

lint-docker: setup ## hadolint on docker/Dockerfile (config: .hadolint.yaml)
	$(VENV)/bin/hadolint --config .hadolint.yaml docker/Dockerfile
