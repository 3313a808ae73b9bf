"""PathVQA (pathology images), closed questions only: AdaptLLM/biomed-VQA-benchmark, config PathVQA, split test."""

from medbridge.data.vqa.closed import closed_adapter

ADAPTER = closed_adapter("pathvqa", "PathVQA", "pathvqa_closed", "microscopy", "this pathology slide")
