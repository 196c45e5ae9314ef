# `make container-test` (docker/container-test.sh): builds the debootstrap base and the image with Podman,
# offline, and runs stages in it against the same stages on the host. `.ci/run` runs it after `make test`.
.PHONY: container-test

container-test: setup ## build base + image with Podman (offline) and check stages in it against the host
	docker/container-test.sh
