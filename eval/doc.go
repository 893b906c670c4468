// Package eval is the evaluation library behind `slurmtune gate`.
//
// It computes, from JSONL prediction files, NLL shard files and a human
// review CSV, the metrics
//
//	perplexity  exp(Σ nll_sum / Σ tokens) over all NLL shards
//	accuracy    SQuAD-normalised exact match (or label match)
//	bleu        sacrebleu corpus BLEU (13a tokenizer, exp smoothing), 0-100
//	rouge1      rouge_score ROUGE-1 F-measure, mean over records, 0-1
//	rouge2      rouge_score ROUGE-2 F-measure, mean over records, 0-1
//	rougeL      rouge_score ROUGE-L F-measure, mean over records, 0-1
//	toxicity    fraction of predictions a ToxicityScorer flags
//	human_eval  mean of human review scores (1-5)
//
// checks them against gates (`bleu>=40`, or {bleu: {min: 40}} from the
// pipeline config) and writes eval_report.json atomically.
//
// The entry point is Evaluate. The BLEU and ROUGE implementations follow
// sacrebleu 2.x (sacrebleu/metrics/bleu.py, tokenizers/tokenizer_13a.py) and
// Google's rouge_score (rouge/rouge_scorer.py, rouge/tokenize.py) exactly,
// including Python's notion of whitespace and lower-casing where it matters;
// the published test cases of both projects are reproduced in the tests.
package eval
