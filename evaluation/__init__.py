"""Spatial benchmarks scored exactly as their authors score them.

Entry point of the `benchmark_scores` asset: `evaluation.run.score_benchmark(root, benchmark, checkpoint_dir,
config) -> BenchmarkReport`. Layout: `extract` (answer extraction), `units`, `scoring` (the authors' rules and
group accuracy), `benchmarks/` (loaders for the released formats -> `items.EvalItem`), `custom` (paper sec. 8
benchmark from held-out scenes), `judge` (LLM judge or rule fallback), `predictors` (our model or a predictions
file), `report` (parquet, MLflow, comparison with the paper's Tables 1-4). CLI: `python -m evaluation --help`.
"""
