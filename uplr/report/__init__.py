"""Tables and figures rebuilt from MLflow, the paper's numbers beside ours."""
