"""KerasTuner glue: search-space files, the hypermodel, and tuners that keep every epoch."""
