"""The code the pipeline's stages (stages/, run by dvc.yaml) share.

params: load and validate params.yaml · data/: datasets, downloads, mirrors · models: the
six networks · training · mc_dropout · tracking: MLflow · plotting, plot_data: figures and
the tables `dvc plots` draws · answers: the report's questions and pages · runtime/: atomic
writes, errors and clean stops, paths, seeding, timing.
"""
