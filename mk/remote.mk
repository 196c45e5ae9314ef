# Sharing DVC-tracked artifacts through a DVC remote (docs/sharing.md). REMOTE=name picks a remote
# other than the default (core.remote in .dvc/config). A preflight (scripts/remote.py) fails fast, with
# the fix, when the remote is unreachable or has no credentials, before DVC hashes anything.
REMOTE ?=
REMOTE_ARGS := $(if $(strip $(REMOTE)),--remote $(strip $(REMOTE)))

.PHONY: push pull

push: setup ## push DVC-tracked data to the default DVC remote (REMOTE=name for another)
	DVC_NO_ANALYTICS=1 $(VENV)/bin/python scripts/remote.py check --for push $(REMOTE_ARGS)
	DVC_NO_ANALYTICS=1 $(VENV)/bin/dvc push $(REMOTE_ARGS)

pull: setup ## pull DVC-tracked data from the default DVC remote (REMOTE=name for another)
	DVC_NO_ANALYTICS=1 $(VENV)/bin/python scripts/remote.py check --for pull $(REMOTE_ARGS)
	DVC_NO_ANALYTICS=1 $(VENV)/bin/dvc pull $(REMOTE_ARGS)
