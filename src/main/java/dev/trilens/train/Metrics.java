package dev.trilens.train;

import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.Parallel;
import dev.trilens.model.Tensor;

/** The challenge's metrics, computed from logits. */
public final class Metrics {
    private Metrics() {
    }

    /**
     * log P(token at t+1) under the prediction at t, for every sequence and t in 0..T-2: [B, T-1], in double, on every
     * core. The loss, the correct-token probabilities and evaluate's metrics all read it.
     */
    public static double[] nextTokenLogProbs(Tensor logits, int[] tokens) {
        int B = logits.dim(0), T = logits.dim(1), V = logits.dim(2);
        float[] l = logits.data();
        double[] lp = new double[B * (T - 1)];
        Parallel.forRange(B, (worker, from, to) -> {
            for (int b = from; b < to; b++) {
                for (int t = 0; t < T - 1; t++) {
                    lp[b * (T - 1) + t] = Logits.logProb(l, (b * T + t) * V, V, tokens[b * T + t + 1]);
                }
            }
        });
        return lp;
    }

    /** Probability of the token at t+1 under the prediction at t, for every sequence and t in 0..T-2: [B, T-1]. */
    public static float[] correctTokenProbs(Tensor logits, int[] tokens) {
        return probs(nextTokenLogProbs(logits, tokens));
    }

    /** Mean cross-entropy of positions 0..T-2 predicting 1..T-1. */
    public static double loss(Tensor logits, int[] tokens) {
        return meanLoss(nextTokenLogProbs(logits, tokens));
    }

    /** The mean of -logProbs, summed in order: the loss of {@link #nextTokenLogProbs}. */
    public static double meanLoss(double[] logProbs) {
        double total = 0;
        for (double lp : logProbs) {
            total -= lp;
        }
        return total / logProbs.length;
    }

    /** exp of each log-probability, as floats: the correct-token probabilities of {@link #nextTokenLogProbs}. */
    public static float[] probs(double[] logProbs) {
        float[] probs = new float[logProbs.length];
        for (int i = 0; i < probs.length; i++) {
            probs[i] = (float) Math.exp(logProbs[i]);
        }
        return probs;
    }

    /** 0 for a model that predicts every trigram perfectly and is uniform elsewhere, 1 for uniform guessing. */
    public static double lossAsFrac(double loss, int dVocab, double trigramProb) {
        double unif = Math.log(dVocab);
        double min = unif * (1 - trigramProb);
        return (loss - min) / (unif - min);
    }

    /** Trigram metrics on the batch of all trigrams as 3-token sequences, from the prediction at position 1. */
    public record TrigramScore(int nCorrect, double fracCorrect, double avgCorrectProb) {
    }

    public static TrigramScore trigramScore(HookedTransformer model, TrigramDataset data) {
        if (data.nTrigrams() == 0) {
            return new TrigramScore(0, Double.NaN, Double.NaN);
        }
        return trigramScore(model.forward(data.trigramBatch(), data.nTrigrams(), 3), data);
    }

    /** The trigram metrics from the logits of the all-trigrams batch [n, 3, V] (however they were computed). */
    public static TrigramScore trigramScore(Tensor logits, TrigramDataset data) {
        int n = data.nTrigrams();
        if (n == 0) {
            return new TrigramScore(0, Double.NaN, Double.NaN);
        }
        int V = logits.dim(2);
        int[][] trigrams = data.trigrams();
        int correct = 0;
        double probSum = 0;
        for (int i = 0; i < n; i++) {
            int row = TrigramDataset.predictionRow(i, V);
            int c = trigrams[i][2];
            if (Logits.argmax(logits.data(), row, V) == c) {
                correct++;
            }
            probSum += Math.exp(Logits.logProb(logits.data(), row, V, c));
        }
        return new TrigramScore(correct, correct / (double) n, probSum / n);
    }

    /** Everything `evaluate` reports, on the whole dataset. */
    public static EvalMetrics evaluate(HookedTransformer model, TrigramDataset data) {
        Tensor logits = model.forward(data.tokens(), data.size(), data.seqLen());
        return evaluate(logits, data, trigramScore(model, data));
    }

    /**
     * evaluate's metrics from logits [size, seq_len, d_vocab] computed on data's tokens (by any pass: hooks, patches)
     * and the trigram score of the same pass.
     */
    public static EvalMetrics evaluate(Tensor logits, TrigramDataset data, TrigramScore tri) {
        double[] lp = nextTokenLogProbs(logits, data.tokens());
        return summarize(meanLoss(lp), probs(lp), tri, data);
    }

    /** Sequences per forward pass when the evaluation set is generated in chunks. */
    public static final int CHUNK_ROWS = 2048;

    /**
     * evaluate's metrics on the challenge's dataset of any size: up to {@link #CHUNK_ROWS} sequences as one batch (the
     * same numbers as {@link #evaluate(HookedTransformer, TrigramDataset)}), beyond that generated, run and forgotten a
     * chunk at a time, so memory stays bounded whatever the size: the correct-token probabilities are kept for the
     * exact median up to {@link #KEEP_PROBS} of them, past that a second pass looks at them again.
     *
     * @param first receives the first chunk's dataset (its trigrams and parameters describe the whole)
     */
    public static EvalMetrics evaluate(HookedTransformer model, int dVocab, int seqLen, double trigramProb, long seed,
                                       long size, java.util.function.Consumer<TrigramDataset> first) {
        return evaluate(model, dVocab, seqLen, trigramProb, seed, size, first, KEEP_PROBS);
    }

    /** keepProbs: how many correct-token probabilities may be kept for the median instead of a second pass. */
    static EvalMetrics evaluate(HookedTransformer model, int dVocab, int seqLen, double trigramProb, long seed,
                                long size, java.util.function.Consumer<TrigramDataset> first, long keepProbs) {
        int rows = chunkRows(model.config());
        if (size <= rows) {
            TrigramDataset data = TrigramDataset.generate(dVocab, seqLen, trigramProb, seed, (int) Math.max(size, 0));
            first.accept(data);
            return evaluate(model, data);
        }
        double[] lossTotal = {0}, probSum = {0};
        float[] min = {Float.POSITIVE_INFINITY};
        long[] count = {0};
        TrigramDataset[] head = {null};
        LowerMedian median = new LowerMedian();
        // the probabilities themselves are a small fraction of a chunk's logits: kept when they fit, so the median
        // needs no second pass; past that, the two-pass median keeps memory bounded
        long predicted = size * (seqLen - 1L);
        float[] kept = predicted <= keepProbs ? new float[(int) predicted] : null;
        TrigramDataset.forEachChunk(dVocab, seqLen, trigramProb, seed, size, rows, chunk -> {
            if (head[0] == null) {
                head[0] = chunk;
                first.accept(chunk);
            }
            double[] lp = nextTokenLogProbs(model.forward(chunk.tokens(), chunk.size(), seqLen), chunk.tokens());
            float[] probs = probs(lp);
            // summed in order across the chunks, as meanLoss sums one batch: the same loss, to the last bit, as
            // evaluating the whole set at once (a sum of per-chunk means times their sizes differed in the last
            // digits, and run's eval.json, one pass, then disagreed with evaluate on the same model)
            for (double v : lp) {
                lossTotal[0] -= v;
            }
            if (kept != null) {
                System.arraycopy(probs, 0, kept, (int) count[0], probs.length);
            }
            for (float p : probs) {
                probSum[0] += p;
                min[0] = Math.min(min[0], p);
                median.count(p);
            }
            count[0] += probs.length;
        });
        median.locate();
        if (kept != null) {
            for (float p : kept) {
                median.refine(p);
            }
        } else {
            TrigramDataset.forEachChunk(dVocab, seqLen, trigramProb, seed, size, rows, chunk -> {
                for (float p : correctTokenProbs(model.forward(chunk.tokens(), chunk.size(), seqLen), chunk.tokens())) {
                    median.refine(p);
                }
            });
        }
        TrigramDataset data = head[0];
        double loss = lossTotal[0] / count[0];
        TrigramScore tri = trigramScore(model, data);
        return new EvalMetrics(loss, lossAsFrac(loss, data.dVocab(), data.trigramProb()), probSum[0] / count[0],
                median.median(), min[0], tri.nCorrect(), tri.fracCorrect(), tri.avgCorrectProb(), data.nTrigrams());
    }

    /** Correct-token probabilities evaluate keeps for the median (16 MB) before it takes a second pass instead. */
    static final long KEEP_PROBS = 1L << 22;

    /** Floats of activations one chunk may hold: a chunk of the challenge's shapes is well below it. */
    static final long CHUNK_FLOATS = 1L << 26;

    /**
     * Sequences per chunk for this model: {@link #CHUNK_ROWS}, fewer where a sequence's logits [n_ctx, d_vocab] or
     * attention [heads, n_ctx, n_ctx] are large; a model whose single sequence is past what one array holds is
     * refused rather than left to overflow.
     */
    static int chunkRows(dev.trilens.model.ModelConfig cfg) {
        long perSequence = (long) cfg.nCtx() * Math.max(cfg.dVocab(), (long) cfg.nHeads() * cfg.nCtx());
        if (perSequence > Integer.MAX_VALUE - 8) {
            throw new dev.trilens.TrilensException("one sequence of this model (n_ctx " + cfg.nCtx() + ", d_vocab "
                    + cfg.dVocab() + ", " + cfg.nHeads() + " heads) needs " + perSequence + " floats of logits or "
                    + "attention, more than one array holds; expected a model with a smaller n_ctx or d_vocab");
        }
        return (int) Math.max(1, Math.min(CHUNK_ROWS, CHUNK_FLOATS / perSequence));
    }

    /**
     * evaluate's report from its parts: the mean loss, the correct-token probabilities of every predicted position,
     * and the trigram score; for callers that compute the logits their own way (hooks, chunks).
     */
    public static EvalMetrics summarize(double loss, float[] correctProbs, TrigramScore tri, TrigramDataset data) {
        double mean = 0;
        for (float p : correctProbs) {
            mean += p;
        }
        mean /= correctProbs.length;
        // torch.median's lower median and the smallest value, as a sorted copy would give them (NaN sorts last) but
        // in linear time: a sort of the 122,500 probabilities took a tenth of analyze, which summarizes dozens of
        // evaluations (JFR)
        LowerMedian lower = new LowerMedian();
        float min = Float.NaN;
        for (float p : correctProbs) {
            lower.count(p);
            if (Float.isNaN(min) || p < min) {
                min = p;
            }
        }
        lower.locate();
        for (float p : correctProbs) {
            lower.refine(p);
        }
        double median = lower.median();
        double trigramProb = Double.isNaN(data.trigramProb())
                ? data.nTrigrams() / ((double) data.dVocab() * (data.dVocab() - 1)) : data.trigramProb();
        return new EvalMetrics(loss, lossAsFrac(loss, data.dVocab(), trigramProb), mean, median, min,
                tri.nCorrect(), tri.fracCorrect(), tri.avgCorrectProb(), data.nTrigrams());
    }
}
