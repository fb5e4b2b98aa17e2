package dev.trilens.interp;

import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;
import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import dev.trilens.model.Tensor;
import dev.trilens.train.Metrics;
import java.util.Arrays;

/**
 * Analysis 1, the worklog's "sample model probabilities": the probability the model gives the correct next token at
 * every (sequence, position) of the evaluation batch, summarized over all positions and split into positions whose
 * next token was forced by a trigram vs. the rest.
 *
 * <p>Index convention (shared with {@link AttentionAnalysis} and {@link Attribution}): entry [s][p] is the prediction
 * made at position p of sequence s for the token at p + 1, for p = 0 .. seq_len - 2. It is a trigram-completion
 * position when {@link TrigramDataset#completesTrigram}(s, p + 1), i.e. tokens p - 1 and p are a trigram's (a, b).
 *
 * <p>JSON keys (snake_case): {@code n_sequences}, {@code n_positions} (seq_len - 1), {@code correct_probs}
 * ([n_sequences][n_positions]), {@code all}, {@code trigram}, {@code other} (each a {@link Stats}),
 * {@code summary} (one sentence) and {@code top_predictions} (a {@link Top}).
 *
 * @param correctProbs [sequence][position]: probability of the token at position + 1 under the prediction at position
 * @param all every (sequence, position)
 * @param trigram positions whose next token completes a trigram
 * @param other the remaining positions
 * @param topPredictions the model's most likely next tokens at every position of the first sequences
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record Predictions(int nSequences, int nPositions, float[][] correctProbs, Stats all, Stats trigram,
                          Stats other,
                          @JsonSerialize(using = OneSentenceList.class) String summary, Top topPredictions) {
    /** Sequences and tokens per position kept in {@link Top}: what a report's attention explorer shows on hover. */
    public static final int TOP_SEQUENCES = 40, TOP_K = 3;

    /**
     * The k most likely next tokens, most likely first, at every position p = 0 .. seq_len - 1 (the last one predicts
     * past the sequence) of the first n_sequences sequences. JSON keys: {@code k}, {@code n_sequences},
     * {@code tokens} and {@code probs} ([n_sequences][seq_len][k]).
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Top(int k, int nSequences, int[][][] tokens, float[][][] probs) {

        static Top of(Tensor logits, int nSequences, int k) {
            int T = logits.dim(1), V = logits.dim(2);
            int K = Math.min(k, V);
            float[] d = logits.data();
            int[][][] tokens = new int[nSequences][T][K];
            float[][][] probs = new float[nSequences][T][K];
            double[] row = new double[V];
            for (int s = 0; s < nSequences; s++) {
                for (int p = 0; p < T; p++) {
                    int off = (s * T + p) * V;
                    Logits.softmax(d, off, V, row);
                    int[] best = tokens[s][p];
                    Arrays.fill(best, -1);
                    for (int v = 0; v < V; v++) {
                        // insertion into the k best so far; ties keep the lower token id first, as torch.topk does
                        int i = K;
                        while (i > 0 && (best[i - 1] < 0 || d[off + v] > d[off + best[i - 1]])) {
                            i--;
                        }
                        if (i < K) {
                            System.arraycopy(best, i, best, i + 1, K - 1 - i);
                            best[i] = v;
                        }
                    }
                    for (int i = 0; i < K; i++) {
                        probs[s][p][i] = (float) row[best[i]];
                    }
                }
            }
            return new Top(K, nSequences, tokens, probs);
        }
    }

    /**
     * Summary statistics of a set of probabilities. JSON keys: {@code count}, {@code mean}, {@code median} (the lower
     * middle value, as torch.median), {@code min}, {@code max}; the four statistics are null when count is 0.
     */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Stats(int count, Double mean, Double median, Double min, Double max) {

        /** Statistics of the first n values of values (which is sorted in place). */
        static Stats of(float[] values, int n) {
            if (n == 0) {
                return new Stats(0, null, null, null, null);
            }
            double sum = 0; // in the given order, as Metrics.evaluate sums
            for (int i = 0; i < n; i++) {
                sum += values[i];
            }
            Arrays.sort(values, 0, n);
            return new Stats(n, sum / n, (double) values[(n - 1) / 2], (double) values[0], (double) values[n - 1]);
        }
    }

    /** Runs the model over the context's evaluation batch. */
    public static Predictions compute(AnalysisContext ctx) {
        TrigramDataset data = requireData(ctx, "the correct-token probabilities");
        HookedTransformer model = ctx.model();
        Tensor logits = model.forward(data.tokens(), data.size(), data.seqLen());
        return of(logits, data);
    }

    /** From logits [size, seq_len, d_vocab] already computed on data's tokens. */
    public static Predictions of(Tensor logits, TrigramDataset data) {
        int B = data.size(), T = data.seqLen();
        if (logits.rank() != 3 || logits.dim(0) != B || logits.dim(1) != T) {
            throw new TrilensException("logits of shape " + logits.shapeString() + " do not match the dataset's "
                    + B + " sequences of " + T + " tokens");
        }
        float[] flat = Metrics.correctTokenProbs(logits, data.tokens());
        float[][] probs = new float[B][T - 1];
        float[] all = new float[B * (T - 1)];
        float[] tri = new float[B * (T - 1)];
        float[] rest = new float[B * (T - 1)];
        int nTri = 0, nRest = 0;
        for (int s = 0; s < B; s++) {
            for (int p = 0; p < T - 1; p++) {
                float v = flat[s * (T - 1) + p];
                probs[s][p] = v;
                all[s * (T - 1) + p] = v;
                if (data.completesTrigram(s, p + 1)) {
                    tri[nTri++] = v;
                } else {
                    rest[nRest++] = v;
                }
            }
        }
        Stats sAll = Stats.of(all, all.length), sTri = Stats.of(tri, nTri), sRest = Stats.of(rest, nRest);
        String summary = String.format("mean correct-token probability %.4f over %d positions; %s at the %d "
                        + "trigram-completion positions vs %s at the other %d", sAll.mean(), sAll.count(),
                fmt(sTri.mean()), nTri, fmt(sRest.mean()), nRest);
        return new Predictions(B, T - 1, probs, sAll, sTri, sRest, summary,
                Top.of(logits, Math.min(TOP_SEQUENCES, B), TOP_K));
    }

    private static String fmt(Double d) {
        return d == null ? "none" : String.format("%.4f", d);
    }

    /** The context's dataset, or a one-line error naming the analysis that needs it. */
    static TrigramDataset requireData(AnalysisContext ctx, String what) {
        if (ctx.data() == null) {
            throw new TrilensException("cannot compute " + what + ": no evaluation dataset is known for this model; "
                    + "pass --seed and --trigram-prob");
        }
        TrigramDataset data = ctx.data();
        if (data.dVocab() != ctx.model().config().dVocab() || data.seqLen() > ctx.model().config().nCtx()) {
            throw new TrilensException("the dataset (d_vocab " + data.dVocab() + ", seq_len " + data.seqLen()
                    + ") does not fit the model (d_vocab " + ctx.model().config().dVocab() + ", n_ctx "
                    + ctx.model().config().nCtx() + ")");
        }
        return data;
    }
}
