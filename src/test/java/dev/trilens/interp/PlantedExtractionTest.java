package dev.trilens.interp;

import static dev.trilens.interp.PlantedModels.attnElsewhere;
import static dev.trilens.interp.PlantedModels.attnPlanted;
import static dev.trilens.interp.PlantedModels.softmaxOne;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.trilens.interp.PlantedModels.Planted;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The weights-only extraction on hand-built models whose trigram table is known by construction
 * ({@link PlantedModels}): every expected number below follows from the construction, not from a run of trilens.
 */
class PlantedExtractionTest {

    static final int V = 12, N_CTX = 16;
    static final double L = 10;

    /**
     * Attention-only: the a tokens {0, 1, 2, 3} and the b tokens {4, 5, 6, 7} are disjoint and each a names one c.
     * (0,4)->8 and (1,4)->9 share b with different c; (2,5)->10 and (2,6)->10 share a. Every other (a, b) over these
     * tokens, e.g. (0,5), (1,6), (2,4), (3,4), is a distractor that shares a or b with a planted prefix.
     */
    static final List<Planted> ATTN_TABLE = List.of(new Planted(0, 4, 8, L), new Planted(1, 4, 9, L),
            new Planted(2, 5, 10, L), new Planted(2, 6, 10, L), new Planted(3, 7, 0, L));

    /**
     * With an MLP: prefixes that share a with different c, (0,4)->8 and (0,5)->9, and share b with different c,
     * (1,4)->10, which the attention-only readout cannot express; (6,6) is absent since a neuron needs a != b.
     */
    static final List<Planted> MLP_TABLE = List.of(new Planted(0, 4, 8, L), new Planted(0, 5, 9, L),
            new Planted(1, 4, 10, L), new Planted(2, 7, 3, L), new Planted(3, 2, 11, L));

    @Test
    void attentionOnlyExtractsExactlyThePlantedTable() {
        TrigramExtractor.Result r = TrigramExtractor.extract(PlantedModels.attentionOnly(V, N_CTX, ATTN_TABLE));
        assertExactly(r, ATTN_TABLE);
        // no b predicts anything by itself: 8 of the 12 a' before any b are not planted a's and copy nothing the
        // unembed reads, so every per-b median is exactly uniform and Otsu's cut keeps nothing
        assertThat(r.bigramDefaults()).isEmpty();
        for (int b = 0; b < V; b++) {
            assertThat(r.bigramDefaultOf(b)).isEqualTo(-1);
        }

        // at a planted prefix the logit of c is L w (w = 1/(1+e^-6) on a), every other logit 0
        double w = attnPlanted();
        assertThat(w).isCloseTo(0.9975274, within(1e-7));
        double pPlanted = softmaxOne(L * w, V);
        for (TrigramExtractor.Entry e : r.trigrams()) {
            assertThat(e.confidence()).isCloseTo(pPlanted, within(1e-5));
            assertThat(e.attnPrev()[0]).isCloseTo(w, within(1e-6));
            assertThat(e.qkAdvantage()[0]).isCloseTo(PlantedModels.GATE - PlantedModels.SELF, within(1e-4));
            // with no attention on a the head copies only b, which the unembed ignores: uniform
            assertThat(e.confidenceNoAttnPrev()).isCloseTo(1.0 / V, within(1e-6));
            assertThat(e.confidenceFullAttnPrev()).isCloseTo(softmaxOne(L, V), within(1e-5));
            // all other logits tie at 0, so the runner-up is the lowest other token
            assertThat(e.runnerUp()).isEqualTo(e.c() == 0 ? 1 : 0);
            assertThat(e.logitMargin()).isCloseTo(L * w, within(1e-4));
            assertThat(e.marginContributions()).containsExactly(new double[] {0, L * w, 0, 0, 0}, within(1e-4));
            assertThat(e.decidedBy()).isEqualTo("ov_prev");
        }

        // a distractor (a, b') with a planted a: the head leaks w' = 1/(1+e^6) onto a, so c(a) gets L w' and the
        // pair's confidence is only softmaxOne(L w') = e^0.024726 / (e^0.024726 + 11) = 0.085242, 1.023 times uniform
        double pLeak = softmaxOne(L * attnElsewhere(), V);
        assertThat(pLeak).isCloseTo(0.085242, within(1e-6));
        int[][] distractors = {{0, 5}, {1, 6}, {2, 4}, {3, 4}, {0, 7}, {2, 7}};
        for (int[] ab : distractors) {
            int i = r.pairs().idx(ab[0], ab[1]);
            assertThat(r.pairs().confidence()[i]).as("distractor %s", ab).isCloseTo((float) pLeak, within(1e-5f));
            assertThat(r.pairs().attnPrev()[i]).isCloseTo((float) attnElsewhere(), within(1e-6f));
        }
        // the cut sits in the middle of the gap from the highest leak to the planted confidence
        assertThat(r.cut().gapLow()).isCloseTo(pLeak, within(1e-5));
        assertThat(r.cut().gapHigh()).isCloseTo(pPlanted, within(1e-5));
        assertThat(r.cut().value()).isCloseTo((pLeak + pPlanted) / 2, within(1e-5));
    }

    /**
     * Attention-only swap on [0, 9, 4, 3]: at p = 2, (9, 4) is not planted, so the head stays on 4 (1 - w') and
     * copies g_4 and g_9, which the unembed ignores: uniform. Moving the attention onto position 0 copies g_0 alone,
     * whose unembed gives 8 the logit L: P(8) = softmaxOne(10) = 0.99950. Moving it onto position 1 (9, not a
     * planted a) changes nothing: the prediction stays uniform.
     */
    @Test
    void attentionOnlySwapOntoAPlantedAPredictsItsC() {
        HookedTransformer model = new HookedTransformer(PlantedModels.attentionOnly(V, N_CTX, ATTN_TABLE));
        int[] tokens = {0, 9, 4, 3};
        Patching.SwapResult onA = Patching.attentionSwap(model, tokens, 2, 0);
        assertThat(onA.attentionToSelfBefore()[0][0]).isCloseTo(1 - attnElsewhere(), within(1e-5));
        assertThat(onA.before().prob()).isCloseTo(1.0 / V, within(1e-6));
        assertThat(onA.after().token()).isEqualTo(8);
        assertThat(onA.after().prob()).isCloseTo(softmaxOne(L, V), within(1e-5));
        // (before the swap the key at 0 still gets e^-34 of the attention, so 8 leads the tie by ~1e-14 of a
        // logit: the top-1 token need not change, only its probability)
        Patching.SwapResult onZ = Patching.attentionSwap(model, tokens, 2, 1);
        assertThat(onZ.after().prob()).isCloseTo(1.0 / V, within(1e-6));
        // at p = 3 the pair (4, 3) is not planted and 3 is a planted a attending itself with 1 - w': its own
        // embedding's -L (1 - w') on c = 0 cancels that copy, so the prediction is uniform to float rounding; with
        // all the attention on itself the copy gives L, the embedding -L (1 - w'): logit L w' on 0
        Patching.SwapResult self = Patching.attentionSwap(model, tokens, 3, 3);
        assertThat(self.before().prob()).isCloseTo(1.0 / V, within(1e-5));
        assertThat(self.after().prob()).isCloseTo(softmaxOne(L * attnElsewhere(), V), within(1e-5));
    }

    @Test
    void mlpVariantExtractsPrefixesSharingAOrBWithDifferentCompletions() {
        Weights w = PlantedModels.withMlp(V, N_CTX, MLP_TABLE);
        TrigramExtractor.Result r = TrigramExtractor.extract(w);
        assertExactly(r, MLP_TABLE);
        assertThat(r.bigramDefaults()).isEmpty();
        // the neuron of (a, b) gets K (w + 1) - 1.5 K and writes strength / (0.5 K) per unit: logit L (2w - 1)
        double logit = L * (2 * attnPlanted() - 1);
        for (TrigramExtractor.Entry e : r.trigrams()) {
            assertThat(e.confidence()).isCloseTo(softmaxOne(logit, V), within(1e-5));
            assertThat(e.decidedBy()).isEqualTo("mlp");
            assertThat(e.marginContributions()[3]).isCloseTo(logit, within(1e-4));
            assertThat(e.confidenceNoAttnPrev()).isCloseTo(1.0 / V, within(1e-6));
        }
        // every non-planted pair: no neuron reaches its threshold (at most K (1 + w') - 1.5 K < 0), all logits 0
        int nUniform = 0;
        Set<Integer> planted = prefixes(MLP_TABLE);
        for (int a = 0; a < V; a++) {
            for (int b = 0; b < V; b++) {
                if (!planted.contains(a * V + b)) {
                    assertThat(r.pairs().confidence()[a * V + b]).isCloseTo(1f / V, within(1e-6f));
                    nUniform++;
                }
            }
        }
        assertThat(nUniform).isEqualTo(V * V - MLP_TABLE.size());
    }

    /**
     * A table whose label-free cut is decided by {@link ConfidenceCut#MIN_KEPT_RATIO}: strong prefixes at P(c) =
     * 2.05/V and weak ones at 1.95/V (every other pair exactly uniform, as in the MLP variant). The points are 1/V,
     * 1.95/V and 2.05/V; the widest gap (0.95/V) runs from 1/V to the weak ones, but its upper side is below
     * 2/V, so the rule takes the only other gap, 1.95/V to 2.05/V, and cuts in its middle, exactly 2/V = 0.166667.
     * A MIN_KEPT_RATIO of 1.95 or less would keep the weak prefixes too, one above 2.05 nothing, a cut at either edge
     * of the gap moves the value by 0.05/V, and a fixed 0.5 keeps nothing.
     */
    @Test
    void minKeptRatioDecidesTheCut() {
        List<Planted> strong = List.of(new Planted(0, 4, 8, strengthFor(2.05)), new Planted(1, 5, 9,
                strengthFor(2.05)), new Planted(2, 6, 10, strengthFor(2.05)));
        List<Planted> weak = List.of(new Planted(3, 7, 11, strengthFor(1.95)), new Planted(0, 7, 2,
                strengthFor(1.95)));
        List<Planted> all = new ArrayList<>(strong);
        all.addAll(weak);
        TrigramExtractor.Result r = TrigramExtractor.extract(PlantedModels.withMlp(V, N_CTX, all));
        assertExactly(r, strong);
        for (Planted t : weak) {
            assertThat(r.pairs().confidence()[t.a() * V + t.b()]).isCloseTo((float) (1.95 / V), within(1e-6f));
            assertThat(r.completionOf(t.a(), t.b())).isEqualTo(-1);
        }
        assertThat(r.cut().rule()).isEqualTo(ConfidenceCut.RULE_WIDEST_GAP);
        assertThat(r.cut().gapLow()).isCloseTo(1.95 / V, within(1e-6));
        assertThat(r.cut().gapHigh()).isCloseTo(2.05 / V, within(1e-6));
        assertThat(r.cut().value()).isCloseTo(2.0 / V, within(1e-6));
        assertThat(r.maxRejectedConfidence()).isCloseTo(1.95 / V, within(1e-6));
        assertThat(r.minExtractedConfidence()).isCloseTo(2.05 / V, within(1e-6));
    }

    /** The strength whose MLP logit L (2w - 1) gives P(c) = ratio / V: e^x / (e^x + V - 1) = ratio / V. */
    static double strengthFor(double ratio) {
        double logit = Math.log(ratio * (V - 1) / (V - ratio));
        return logit / (2 * attnPlanted() - 1);
    }

    static Set<Integer> prefixes(List<Planted> table) {
        Set<Integer> s = new HashSet<>();
        for (Planted t : table) {
            s.add(t.a() * V + t.b());
        }
        return s;
    }

    static void assertExactly(TrigramExtractor.Result r, List<Planted> table) {
        List<List<Integer>> want = new ArrayList<>(), got = new ArrayList<>();
        for (Planted t : table) {
            want.add(List.of(t.a(), t.b(), t.c()));
        }
        for (int[] t : r.triples()) {
            got.add(List.of(t[0], t[1], t[2]));
        }
        assertThat(got).containsExactlyInAnyOrderElementsOf(want);
        for (Planted t : table) {
            assertThat(r.completionOf(t.a(), t.b())).isEqualTo(t.c());
        }
    }
}
