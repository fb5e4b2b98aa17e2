package dev.trilens.interp;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Logits;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where the trigram mechanism fails, part one: the dataset's trigrams the model misses, each with one cause.
 *
 * <p><b>Catalogue.</b> A trigram is missed when the argmax at position 1 of [a, b, c] (the all-trigrams batch) is not
 * c. Its cause is the first of these that holds, so the counts add up to the number missed:
 * <ol>
 *   <li>{@code repeated_token}: a == b or b == c (the head must tell a from b by position alone, or c is b);</li>
 *   <li>{@code shared_second_token}: the model predicts c' of another trigram (a', b, c') with the same b;</li>
 *   <li>{@code low_qk_advantage}: b attends a with less than 0.5 (QK prefers b itself), but attending a fully
 *   (pattern hooked one-hot on a) would give c: the readout knows c, the QK circuit does not select a;</li>
 *   <li>{@code split_attention}: b attends a with 0.5 or more but not all of it, and attending a fully would give c:
 *   the part left on b itself dilutes the copy of a;</li>
 *   <li>{@code wrong_readout}: b attends a with 0.5 or more and even full attention gives another token: the OV/MLP
 *   readout gets c wrong;</li>
 *   <li>{@code not_learned}: b attends a with less than 0.5 and full attention would not help either.</li>
 * </ol>
 */
public final class MissCatalogue {
    private MissCatalogue() {
    }

    public enum Cause {
        REPEATED_TOKEN("repeated_token"), SHARED_SECOND_TOKEN("shared_second_token"),
        LOW_QK_ADVANTAGE("low_qk_advantage"), SPLIT_ATTENTION("split_attention"), WRONG_READOUT("wrong_readout"),
        NOT_LEARNED("not_learned");

        public final String key;

        Cause(String key) {
            this.key = key;
        }
    }

    /** Attention on a below this is "QK does not select a". */
    public static final double ATTENTION_THRESHOLD = 0.5;

    /**
     * One missed trigram.
     *
     * @param attnPrev attention of b (position 1) on a (position 0), the largest over heads
     * @param qkAdvantage that head's score on a minus its score on b itself
     * @param fullAttentionPredicts argmax at position 1 when every head attends a fully
     * @param siblings the other trigrams with the same b, {a', b, c'}
     */
    public record Miss(int a, int b, int c, int predicted, double probC, double probPredicted, double attnPrev,
                       double qkAdvantage, int fullAttentionPredicts, int[][] siblings, Cause cause,
                       List<String> flags) {
    }

    /**
     * @param counts missed trigrams per primary cause (they add up to nMissed)
     * @param flagCounts missed trigrams per flag (a trigram may have several)
     * @param nAttending of all trigrams, those whose b attends a with at least {@link #ATTENTION_THRESHOLD} at
     *                   position 1: the ones the QK circuit has learned
     * @param nCorrectWithoutAttention trigrams the model gets right (argmax c) although b does not attend a: right
     *                                 from b alone (its bigram statistics), not by the trigram mechanism
     * @param sharesBRateAttending fraction of the attending trigrams whose b starts another trigram's second place
     *                             too; sharesBRateNotAttending the same for the others
     */
    public record Catalogue(int nTrigrams, int nMissed, Map<Cause, Integer> counts, Map<String, Integer> flagCounts,
                            int nAttending, int nCorrectWithoutAttention, double sharesBRateAttending,
                            double sharesBRateNotAttending, List<Miss> missed) {
    }

    /** Catalogues the dataset trigrams the model misses (argmax at position 1 of the all-trigrams batch != c). */
    public static Catalogue catalogue(HookedTransformer model, TrigramDataset data) {
        check(model, data);
        int n = data.nTrigrams(), V = data.dVocab(), H = model.config().nHeads();
        Map<Cause, Integer> counts = new EnumMap<>(Cause.class);
        for (Cause k : Cause.values()) {
            counts.put(k, 0);
        }
        Map<String, Integer> flagCounts = new LinkedHashMap<>();
        for (String f : FLAGS) {
            flagCounts.put(f, 0);
        }
        if (n == 0) {
            return new Catalogue(0, 0, counts, flagCounts, 0, 0, Double.NaN, Double.NaN, List.of());
        }
        int[][] tri = data.trigrams();
        int[] batch = data.trigramBatch();
        String scoresHook = "blocks.0.attn.hook_attn_scores";
        HookedTransformer.Run run = model.runWithCache(batch, n, 3,
                name -> name.equals(CausalValidation.PATTERN_HOOK) || name.equals(scoresHook));
        float[] lg = run.logits().data(), pat = run.cache().get(CausalValidation.PATTERN_HOOK).data(),
                sc = run.cache().get(scoresHook).data();
        float[] full = model.runWithHooks(batch, n, 3, List.of(CausalValidation.previousTokenHook(batch, 3)))
                .data();
        int[] trigramsWithB = new int[V];
        for (int[] t : tri) {
            trigramsWithB[t[1]]++;
        }
        List<Miss> missed = new ArrayList<>();
        int attending = 0, correctWithout = 0, sharedAttending = 0, sharedOther = 0;
        for (int i = 0; i < n; i++) {
            int a = tri[i][0], b = tri[i][1], c = tri[i][2], row = TrigramDataset.predictionRow(i, V);
            int pred = Logits.argmax(lg, row, V);
            int head = 0;
            for (int h = 1; h < H; h++) {
                if (pat[((i * H + h) * 3 + 1) * 3] > pat[((i * H + head) * 3 + 1) * 3]) {
                    head = h;
                }
            }
            double attn = pat[((i * H + head) * 3 + 1) * 3];
            boolean shared = trigramsWithB[b] > 1;
            if (attn >= ATTENTION_THRESHOLD) {
                attending++;
                sharedAttending += shared ? 1 : 0;
            } else {
                sharedOther += shared ? 1 : 0;
                correctWithout += pred == c ? 1 : 0;
            }
            if (pred == c) {
                continue;
            }
            double adv = sc[((i * H + head) * 3 + 1) * 3] - sc[((i * H + head) * 3 + 1) * 3 + 1];
            int fullPred = Logits.argmax(full, row, V);
            List<int[]> sib = new ArrayList<>();
            boolean predictsSibling = false;
            for (int[] t : tri) {
                if (t[1] == b && t[0] != a) {
                    sib.add(t.clone());
                    predictsSibling |= t[2] == pred;
                }
            }
            List<String> flags = new ArrayList<>();
            if (a == b) {
                flags.add("a==b");
            }
            if (b == c) {
                flags.add("b==c");
            }
            if (a == c) {
                flags.add("a==c");
            }
            if (!sib.isEmpty()) {
                flags.add("shares_b");
            }
            if (predictsSibling) {
                flags.add("predicts_sibling_c");
            }
            if (attn < ATTENTION_THRESHOLD) {
                flags.add("low_attention");
            }
            if (fullPred == c) {
                flags.add("fixed_by_full_attention");
            }
            Cause cause;
            if (a == b || b == c) {
                cause = Cause.REPEATED_TOKEN;
            } else if (predictsSibling) {
                cause = Cause.SHARED_SECOND_TOKEN;
            } else if (attn < ATTENTION_THRESHOLD) {
                cause = fullPred == c ? Cause.LOW_QK_ADVANTAGE : Cause.NOT_LEARNED;
            } else {
                cause = fullPred == c ? Cause.SPLIT_ATTENTION : Cause.WRONG_READOUT;
            }
            counts.merge(cause, 1, Integer::sum);
            for (String f : flags) {
                flagCounts.merge(f, 1, Integer::sum);
            }
            missed.add(new Miss(a, b, c, pred, Math.exp(Logits.logProb(lg, row, V, c)),
                    Math.exp(Logits.logProb(lg, row, V, pred)), attn, adv, fullPred, sib.toArray(new int[0][]),
                    cause, List.copyOf(flags)));
        }
        return new Catalogue(n, missed.size(), counts, flagCounts, attending, correctWithout,
                attending == 0 ? Double.NaN : sharedAttending / (double) attending,
                attending == n ? Double.NaN : sharedOther / (double) (n - attending), List.copyOf(missed));
    }

    /** Every flag a missed trigram can carry. */
    public static final List<String> FLAGS = List.of("a==b", "b==c", "a==c", "shares_b", "predicts_sibling_c",
            "low_attention", "fixed_by_full_attention");

    static void check(HookedTransformer model, TrigramDataset data) {
        if (data.dVocab() != model.config().dVocab() || data.seqLen() > model.config().nCtx()) {
            throw new TrilensException("dataset (d_vocab " + data.dVocab() + ", seq_len " + data.seqLen()
                    + ") does not fit the model (d_vocab " + model.config().dVocab() + ", n_ctx "
                    + model.config().nCtx() + ")");
        }
    }
}
