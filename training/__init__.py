"""The RGB-D VLM (PaliGemma-2 + metric point-map branch), its Lightning training and MLflow tracking.

One file per concept: `config` (typed presets), `tokenizer` (offline tokenizer for tiny models), `model`
(point-map encoder and the fused PaliGemma), `checkpoints` (safetensors, official HiSpatial import/export),
`data` (QA mixture, online L0, collate), `module` (LightningModule), `train` (entry point + MLflow),
`ablation` (the paper's level-ablation experiment).
"""
