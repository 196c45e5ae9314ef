# The real benchmarks at the paper's scale (docs/real-data.md): one DVC pipeline per benchmark under
# pipelines/<BENCHMARK>/ (dvc.yaml rendered by uplr/pipelines.py). Nothing here edits a file:
#   STAGES='evaluate_upst@0'  run only these stages of the pipeline (and what they need)
#   SEEDS='[0]'  CITIES='[Rome]'  another grid, run as a DVC experiment (dvc exp run -S ...)
#   SMOKE=1      a dry run of the whole pipeline on the CPU (uplr/smoke.py): a handful of images in the
#                real formats at the real sizes, random weights in the peers' init layout, 2 iterations
#                per training stage, in a temporary copy; prints each stage's wall time and peak RSS,
#                writes pipelines/<BENCHMARK>/smoke.json (read by `uplr cost`). SMOKE_ARGS='--images 2 ...'
BENCHMARKS := gta5_cityscapes synthia_cityscapes cityscapes_nthu
BENCHMARK ?=
STAGES ?=
CITIES ?=
SEEDS ?=
SMOKE ?=
SMOKE_ARGS ?=
PIPELINE_DIR = pipelines/$(strip $(BENCHMARK))

# an unknown or missing BENCHMARK stops make before anything runs (exit status 2)
ifneq ($(filter reproduce data-check,$(MAKECMDGOALS)),)
ifeq ($(and $(filter 1,$(words $(BENCHMARK))),$(filter $(BENCHMARKS),$(BENCHMARK))),)
$(error BENCHMARK='$(BENCHMARK)' is not a real benchmark; valid ones: $(BENCHMARKS) (e.g. make reproduce BENCHMARK=gta5_cityscapes; the embedded benchmark is make ablation))
endif
endif

_DVC_TARGETS = $(if $(strip $(STAGES)),$(addprefix $(PIPELINE_DIR)/dvc.yaml:,$(STAGES)),$(PIPELINE_DIR)/dvc.yaml)
_EXP_SETS = $(if $(strip $(SEEDS)),-S '$(PIPELINE_DIR)/params.yaml:seeds=$(SEEDS)') \
	$(if $(strip $(CITIES)),-S '$(PIPELINE_DIR)/cities.yaml:cities=$(CITIES)')

.PHONY: reproduce data-check

reproduce: setup ## a real benchmark: BENCHMARK=gta5_cityscapes|synthia_cityscapes|cityscapes_nthu [STAGES= SEEDS= CITIES= SMOKE=1]
ifeq ($(strip $(SMOKE)),1)
	$(VENV)/bin/python -m uplr.smoke $(BENCHMARK) $(SMOKE_ARGS)
else ifeq ($(strip $(SEEDS)$(CITIES)),)
	$(VENV)/bin/dvc repro $(_DVC_TARGETS)
else
	$(VENV)/bin/dvc exp run $(_DVC_TARGETS) $(_EXP_SETS)
endif

data-check: setup ## check a real benchmark's datasets (every listed file) before training: BENCHMARK=...
	$(VENV)/bin/python -m uplr.pipelines --data-check $(BENCHMARK)
