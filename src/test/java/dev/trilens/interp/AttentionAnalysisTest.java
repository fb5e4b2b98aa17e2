package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.Hook;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import dev.trilens.train.Metrics;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class AttentionAnalysisTest {

    /** The hand-set weight of query q on its previous token: varied, with a final position that stands out. */
    static float w(int s, int q, int T, int layer, int head) {
        if (q == T - 1) {
            return 0.9f;
        }
        return ((s * 5 + q * 3 + layer * 2 + head * 7) % 11) / 20f; // 0 .. 0.5
    }

    /** Sets every head's pattern: row q puts w on q - 1 and the rest on q (row 0 all on 0). */
    static Hook.At knownPattern(int layer, int T) {
        return Hook.at("blocks." + layer + ".attn.hook_pattern", (act, name) -> {
            int B = act.dim(0), H = act.dim(1);
            for (int b = 0; b < B; b++) {
                for (int h = 0; h < H; h++) {
                    for (int q = 0; q < T; q++) {
                        int row = act.index(b, h, q, 0);
                        java.util.Arrays.fill(act.data(), row, row + T, 0f);
                        if (q == 0) {
                            act.data()[row] = 1f;
                        } else {
                            float x = w(b, q, T, layer, h);
                            act.data()[row + q - 1] = x;
                            act.data()[row + q] = 1f - x;
                        }
                    }
                }
            }
        });
    }

    @Test
    void setsOfAHandSetPatternAreComputedCorrectly() {
        int V = 7, T = 8, B = 30;
        double thr = 0.15;
        HookedTransformer model = new HookedTransformer(Weights.init(new ModelConfig(V, T, 12, 1, 1, 4, 10, false), 2));
        TrigramDataset data = TrigramDataset.generate(V, T, 0.2, 3, B);
        List<Hook.At> hooks = List.of(knownPattern(0, T));
        AttentionAnalysis a = AttentionAnalysis.compute(new AnalysisContext(model, data, thr), 3, hooks);

        // the expected sets, by brute force over (s, p), 1 <= p <= T-2
        float[] probs = Metrics.correctTokenProbs(model.runWithHooks(data.tokens(), B, T, hooks), data.tokens());
        List<int[]> attn = new ArrayList<>(), prob = new ArrayList<>(), tri = new ArrayList<>();
        int both = 0, attnTri = 0;
        List<int[]> onlyAttn = new ArrayList<>(), onlyProb = new ArrayList<>();
        for (int s = 0; s < B; s++) {
            for (int p = 1; p <= T - 2; p++) {
                boolean inA = w(s, p, T, 0, 0) > thr, inP = probs[s * (T - 1) + p] > thr;
                boolean inT = data.completesTrigram(s, p + 1);
                if (inA) {
                    attn.add(new int[] {s, p});
                }
                if (inP) {
                    prob.add(new int[] {s, p});
                }
                if (inT) {
                    tri.add(new int[] {s, p});
                }
                both += inA && inP ? 1 : 0;
                attnTri += inA && inT ? 1 : 0;
                if (inA && !inP) {
                    onlyAttn.add(new int[] {s, p});
                }
                if (inP && !inA) {
                    onlyProb.add(new int[] {s, p});
                }
            }
        }
        assertThat(prob).as("a test that means something needs both sets non-trivial").isNotEmpty();
        assertThat(onlyAttn).isNotEmpty();

        assertThat(a.nPositionsCompared()).isEqualTo(B * (T - 2));
        assertThat(a.heads()).hasSize(1);
        AttentionAnalysis.HeadAttention h = a.heads().get(0);
        assertThat(h.name()).isEqualTo("L0H0");
        AttentionAnalysis.SetComparison c = h.vsCorrectProb();
        assertThat(c.sizeA()).isEqualTo(attn.size());
        assertThat(c.sizeB()).isEqualTo(prob.size());
        assertThat(c.intersection()).isEqualTo(both);
        assertThat(c.symmetricDifference()).isEqualTo(attn.size() + prob.size() - 2 * both);
        assertThat(c.equal()).isFalse();
        assertThat(c.jaccard()).isCloseTo(both / (double) (attn.size() + prob.size() - both), within(1e-12));
        assertThat(c.examplesOnlyA()).containsExactlyElementsOf(onlyAttn.subList(0, Math.min(5, onlyAttn.size())));
        assertThat(c.examplesOnlyB()).containsExactlyElementsOf(onlyProb.subList(0, Math.min(5, onlyProb.size())));
        assertThat(c.summary()).startsWith("the sets differ: " + attn.size() + " vs " + prob.size() + " positions");
        assertThat(h.vsTrigram().sizeB()).isEqualTo(tri.size());
        assertThat(h.vsTrigram().intersection()).isEqualTo(attnTri);

        // the arrays, indexed by query position
        for (int s = 0; s < B; s++) {
            assertThat(h.prevTokenAttention()[s][0]).isZero();
            for (int p = 1; p < T; p++) {
                assertThat(h.prevTokenAttention()[s][p]).isEqualTo(w(s, p, T, 0, 0));
            }
        }
        assertThat(h.patterns()).hasDimensions(3, T);
        assertThat(h.patterns()[2][5][4]).isEqualTo(w(2, 5, T, 0, 0));
        assertThat(h.patterns()[2][5][5]).isEqualTo(1f - w(2, 5, T, 0, 0));
        double mean3 = 0;
        for (int s = 0; s < B; s++) {
            mean3 += w(s, 3, T, 0, 0);
        }
        assertThat(h.meanPrevAttentionByPosition()[3]).isCloseTo(mean3 / B, within(1e-6));
        assertThat(h.quirk().standoutPosition()).isEqualTo(T - 1);
        assertThat(h.quirk().finalPositionStandsOut()).isTrue();

        // the sweep agrees with the brute force at its own thresholds
        assertThat(h.sweep()).hasSize(19);
        AttentionAnalysis.SweepPoint at25 = h.sweep().get(4);
        assertThat(at25.threshold()).isEqualTo(0.25);
        long n25 = 0;
        for (int s = 0; s < B; s++) {
            for (int p = 1; p <= T - 2; p++) {
                n25 += w(s, p, T, 0, 0) > 0.25 ? 1 : 0;
            }
        }
        assertThat(at25.nAttention()).isEqualTo((int) n25);
        assertThat(at25.nTrigram()).isEqualTo(tri.size());
        // one head: "any head" is that head
        assertThat(a.anyHead().vsCorrectProb().sizeA()).isEqualTo(attn.size());
        assertThat(a.correctProbVsTrigram().sizeA()).isEqualTo(prob.size());
    }

    @Test
    void theQuirkIsTheFarthestPositionFromTheMedianBeyondFiveMadsAndAFloor() {
        // positions 1..6 (position 0 has no previous token and is ignored, even when it is far off):
        // values 0.10 0.12 0.14 0.16 0.18 0.60 -> median (0.14 + 0.16) / 2 = 0.15; deviations 0.05 0.03 0.01 0.01
        // 0.03 0.45 -> MAD (0.03 + 0.03) / 2 = 0.03; position 6 departs 0.45 > 5 x 0.03 and > 0.05
        double[] mean = {9.0, 0.10, 0.12, 0.14, 0.16, 0.18, 0.60};
        AttentionAnalysis.PositionQuirk q = AttentionAnalysis.quirk(mean);
        assertThat(q.medianValue()).isCloseTo(0.15, within(1e-12));
        assertThat(q.mad()).isCloseTo(0.03, within(1e-12));
        assertThat(q.standoutPosition()).isEqualTo(6);
        assertThat(q.standoutValue()).isEqualTo(0.60);
        assertThat(q.standsOut()).isTrue();
        assertThat(q.finalPositionStandsOut()).isTrue();
        assertThat(q.summary()).isEqualTo("position 6 (the final position) stands out: mean attention to its previous "
                + "token 0.600 vs a median of 0.150 over positions 1..6");
        // the same departure in the middle: it stands out, but it is not the final position
        AttentionAnalysis.PositionQuirk middle = AttentionAnalysis.quirk(new double[] {0, 0.10, 0.12, 0.60, 0.14,
                0.16, 0.18});
        assertThat(middle.standoutPosition()).isEqualTo(3);
        assertThat(middle.standsOut()).isTrue();
        assertThat(middle.finalPositionStandsOut()).isFalse();
        assertThat(middle.summary()).startsWith("position 3 stands out");
        // odd count (positions 1..5): median 0.14, deviations 0.04 0.02 0 0.02 0.06 -> MAD 0.02; 0.06 is not
        // beyond 5 x 0.02 = 0.10: nothing stands out, though position 5 departs most
        AttentionAnalysis.PositionQuirk odd = AttentionAnalysis.quirk(new double[] {0, 0.10, 0.12, 0.14, 0.16, 0.20});
        assertThat(odd.medianValue()).isCloseTo(0.14, within(1e-12));
        assertThat(odd.mad()).isCloseTo(0.02, within(1e-12));
        assertThat(odd.standsOut()).isFalse();
        assertThat(odd.standoutPosition()).isEqualTo(5);
        assertThat(odd.summary()).isEqualTo("no position stands out: mean attention to the previous token has median "
                + "0.140 over positions 1..5; the largest departure is position 5 (0.200)");
        // beyond five MADs of a tiny spread but under the 0.05 floor: not a quirk
        AttentionAnalysis.PositionQuirk small = AttentionAnalysis.quirk(new double[] {0, 0.100, 0.101, 0.100, 0.101,
                0.140});
        assertThat(small.standoutPosition()).isEqualTo(5);
        assertThat(small.standsOut()).isFalse();
    }

    @Test
    void aOneSentenceSummaryIsWrittenAsAListOfThatSentence() {
        AttentionAnalysis.PositionQuirk q = AttentionAnalysis.quirk(new double[] {0, 0.1, 0.1, 0.1});
        JsonNode json = new ObjectMapper().valueToTree(q);
        assertThat(json.get("summary").isArray()).isTrue();
        assertThat(json.get("summary")).hasSize(1);
        assertThat(json.get("summary").get(0).asText()).isEqualTo(q.summary());
    }

    @Test
    void aSetComparisonCountsEachSideAndTheOverlap() {
        // T = 5: positions 0..9 are sequence 0 (0..4) and sequence 1 (5..9)
        boolean[] a = new boolean[10], b = new boolean[10];
        a[1] = a[2] = a[7] = true;
        b[2] = b[7] = b[8] = b[9] = true;
        AttentionAnalysis.SetComparison c = AttentionAnalysis.compare("attends", "predicts", 0.2, a, b, 5);
        assertThat(c.sizeA()).isEqualTo(3);
        assertThat(c.sizeB()).isEqualTo(4);
        assertThat(c.intersection()).isEqualTo(2);
        assertThat(c.onlyA()).isEqualTo(1);
        assertThat(c.onlyB()).isEqualTo(2);
        assertThat(c.symmetricDifference()).isEqualTo(3);
        assertThat(c.equal()).isFalse();
        assertThat(c.jaccard()).isCloseTo(2.0 / 5, within(1e-12));
        assertThat(c.examplesOnlyA()).containsExactly(new int[] {0, 1});
        assertThat(c.examplesOnlyB()).containsExactly(new int[] {1, 3}, new int[] {1, 4});
        assertThat(c.summary()).isEqualTo("the sets differ: 3 vs 4 positions (attends vs predicts); 2 in both, 1 only "
                + "in the first, 2 only in the second, Jaccard 0.400");
    }

    @Test
    void flatAttentionHasNoQuirkAndEqualSetsAreReportedEqual() {
        double[] flat = new double[10];
        for (int p = 1; p < 10; p++) {
            flat[p] = 0.3 + 0.001 * (p % 3);
        }
        AttentionAnalysis.PositionQuirk q = AttentionAnalysis.quirk(flat);
        assertThat(q.standsOut()).isFalse();
        assertThat(q.finalPositionStandsOut()).isFalse();
        assertThat(q.summary()).startsWith("no position stands out");

        boolean[] a = new boolean[20], b = new boolean[20];
        a[3] = b[3] = a[14] = b[14] = true;
        AttentionAnalysis.SetComparison c = AttentionAnalysis.compare("x", "y", 0.2, a, b, 10);
        assertThat(c.equal()).isTrue();
        assertThat(c.jaccard()).isEqualTo(1.0);
        assertThat(c.summary()).startsWith("the sets are equal: 2 positions");
        AttentionAnalysis.SetComparison empty = AttentionAnalysis.compare("x", "y", 0.2, new boolean[20],
                new boolean[20], 10);
        assertThat(empty.equal()).isTrue();
        assertThat(empty.jaccard()).isEqualTo(1.0);
    }

    @Test
    void multiLayerMultiHeadModelsAnalyseEveryHeadAndAnyHead() throws Exception {
        int V = 7, T = 8, B = 12;
        HookedTransformer model = new HookedTransformer(Weights.init(new ModelConfig(V, T, 12, 2, 2, 4, 0, true), 4));
        TrigramDataset data = TrigramDataset.generate(V, T, 0.2, 3, B);
        List<Hook.At> hooks = List.of(knownPattern(0, T), knownPattern(1, T));
        AttentionAnalysis a = AttentionAnalysis.compute(new AnalysisContext(model, data, 0.3), 2, hooks);
        assertThat(a.heads()).extracting(AttentionAnalysis.HeadAttention::name)
                .containsExactly("L0H0", "L0H1", "L1H0", "L1H1");
        int any = 0;
        for (int s = 0; s < B; s++) {
            for (int p = 1; p <= T - 2; p++) {
                boolean in = false;
                for (int l = 0; l < 2; l++) {
                    for (int h = 0; h < 2; h++) {
                        in |= w(s, p, T, l, h) > 0.3;
                    }
                }
                any += in ? 1 : 0;
            }
        }
        assertThat(a.anyHead().vsCorrectProb().sizeA()).isEqualTo(any);
        assertThat(a.anyHead().patterns()).isEmpty();
        assertThat(a.heads().get(3).prevTokenAttention()[4][2]).isEqualTo(w(4, 2, T, 1, 1));

        JsonNode json = new ObjectMapper().valueToTree(a);
        assertThat(json.fieldNames()).toIterable().containsExactly("threshold", "n_sequences", "seq_len",
                "n_positions_compared", "heads", "any_head", "correct_prob_vs_trigram", "summary");
        assertThat(json.get("heads").get(0).fieldNames()).toIterable().containsExactly("layer", "head", "name",
                "patterns", "prev_token_attention", "mean_prev_attention_by_position", "quirk", "vs_correct_prob",
                "vs_trigram", "sweep");
        assertThat(json.get("heads").get(0).get("vs_trigram").get("size_a").isInt()).isTrue();
        assertThat(json.get("heads").get(0).get("sweep").get(0).has("jaccard_correct_prob")).isTrue();
    }

    @Test
    void challengeModel() {
        HookedTransformer model = new HookedTransformer(Checkpoints.load(Fixtures.challengeModel()).weights());
        TrigramDataset data = TrigramDataset.generate(75, 50, 0.05, 40, 2500);
        AttentionAnalysis a = AttentionAnalysis.compute(new AnalysisContext(model, data));
        AttentionAnalysis.HeadAttention h = a.heads().get(0);
        assertThat(h.patterns()).hasDimensions(4, 50);
        // measured: at 0.2 the two sets are the same 4519 positions; 5629 positions complete a trigram, and
        // every attended one is among them
        assertThat(h.vsCorrectProb().equal()).isTrue();
        assertThat(h.vsCorrectProb().sizeA()).isEqualTo(4519);
        assertThat(h.vsTrigram().sizeB()).isEqualTo(5629);
        assertThat(h.vsTrigram().onlyA()).isZero();
        assertThat(h.vsTrigram().equal()).isFalse();
        // not equal at every threshold: the sweep shows where the claim holds
        assertThat(h.sweep().get(0).equalCorrectProb()).isFalse();
        // the quirk: the final position attends its previous token far more than the others (0.537 vs ~0.034)
        assertThat(h.quirk().standoutPosition()).isEqualTo(49);
        assertThat(h.quirk().finalPositionStandsOut()).isTrue();
        assertThat(h.meanPrevAttentionByPosition()[49]).isGreaterThan(0.5);
    }
}
