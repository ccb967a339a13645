"""The workflow: the one sequence of stages (convert, config, labels, train, evaluate) on a run
folder that project.yml's `all`, the Label Studio retraining and the training benchmark run."""
