package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.model.Hook;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import dev.trilens.train.Metrics;
import dev.trilens.train.Trainer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class TrigramExtractorTest {

    @Test
    void readsTheChallengeModelsTableWithFullPrecision() {
        TrigramExtractor.Result r = TrigramExtractorTestModels.challengeExtraction();
        HookedTransformer model = new HookedTransformer(TrigramExtractorTestModels.challenge());
        TrigramExtractor.Evaluation ev = TrigramExtractor.evaluate(r, model,
                TrigramExtractorTestModels.challengeData(1));
        // measured: 221 extracted, all of them dataset trigrams; recall 221/277 = 0.798 against the dataset,
        // 221/266 = 0.831 against the model's argmax (the other 45 are argmax with P(c) ~0.02 only), and 221/221
        // against the trigrams it predicts with P(c) > 0.5
        assertThat(ev.vsDataset().precision()).isGreaterThan(0.98);
        assertThat(ev.vsDataset().recall()).isGreaterThan(0.75);
        assertThat(ev.vsModel().precision()).isGreaterThan(0.98);
        assertThat(ev.vsModel().recall()).isGreaterThan(0.8);
        assertThat(ev.vsModelConfident().precision()).isGreaterThan(0.98);
        assertThat(ev.vsModelConfident().recall()).isGreaterThan(0.95);
        assertThat(ev.vsModel().nReference()).isEqualTo(
                Metrics.trigramScore(model, TrigramExtractorTestModels.challengeData(1)).nCorrect());
        assertThat(ev.nPredictedUnconfident()).isEqualTo(ev.vsModel().nReference() - ev.vsModelConfident().nReference());
        // the confidences are bimodal: the threshold could be anywhere in a wide gap
        assertThat(r.maxRejectedConfidence()).isLessThan(0.1);
        assertThat(r.minExtractedConfidence()).isGreaterThan(0.9);
        // the explanation of each entry: b attends a (measured in a random context: 0.83 on average, at least 0.43),
        // and without the copy of a, c is no more likely than any token; with all attention on a, c wins for all but
        // 3 entries (measured), which need the mix of a's and b's values
        double meanAttn = 0;
        int needMix = 0;
        for (TrigramExtractor.Entry e : r.trigrams()) {
            assertThat(e.attnPrev()[0]).as("attention of %s", e.explanation()).isGreaterThan(0.35);
            assertThat(e.confidenceNoAttnPrev()).isLessThan(0.1);
            needMix += e.confidenceFullAttnPrev() < 0.5 ? 1 : 0;
            meanAttn += e.attnPrev()[0] / r.trigrams().size();
        }
        assertThat(meanAttn).isGreaterThan(0.75);
        assertThat(needMix).isLessThanOrEqualTo(6);
        assertWellFormed(r);
        // the two readings of the softmax agree on this model
        TrigramExtractor.Result twoKey = TrigramExtractor.extract(TrigramExtractorTestModels.challenge(),
                TrigramExtractor.Options.defaults().withBackground(TrigramExtractor.Background.TWO_KEY)
                        .withPositions(1, 25, 48));
        assertThat(asSet(twoKey.triples())).isEqualTo(asSet(r.triples()));
    }

    @Test
    void componentsReproduceTheModelOnTheTwoTokenContext() {
        List<Weights> models = new ArrayList<>();
        models.add(Weights.init(new ModelConfig(11, 9, 16, 1, 2, 8, 12, true), 3));  // LN, 2 heads
        models.add(Weights.init(new ModelConfig(11, 9, 16, 1, 3, 4, 0, false), 4)); // attention-only, 3 heads
        models.add(TrigramExtractorTestModels.tiny().weights().copy());
        for (Weights w : models) {
            randomizeBiases(w, 5);
            HookedTransformer model = new HookedTransformer(w);
            int V = w.cfg.dVocab(), T = w.cfg.nCtx();
            Random rng = new Random(1);
            for (int trial = 0; trial < 6; trial++) {
                int a = rng.nextInt(V), b = rng.nextInt(V), p = 1 + rng.nextInt(T - 1);
                // the model on a sequence whose query p sees only p-1 and p: mask every earlier key's score
                int[] tokens = new int[p + 1];
                for (int i = 0; i < p - 1; i++) {
                    tokens[i] = rng.nextInt(V);
                }
                tokens[p - 1] = a;
                tokens[p] = b;
                Hook.At mask = Hook.at("blocks.0.attn.hook_attn_scores", (t, name) -> {
                    int H = t.dim(1), L = t.dim(2);
                    for (int h = 0; h < H; h++) {
                        for (int k = 0; k < p - 1; k++) {
                            t.data()[(h * L + p) * L + k] = Float.NEGATIVE_INFINITY;
                        }
                    }
                });
                Tensor logits = model.runWithHooks(tokens, 1, p + 1, List.of(mask));
                double[] probs = TrigramExtractor.distribution(w, a, b, p, TrigramExtractor.Background.TWO_KEY);
                for (int c = 0; c < V; c++) {
                    assertThat(probs[c]).as("%s a=%d b=%d p=%d c=%d", w.cfg, a, b, p, c)
                            .isCloseTo(Math.exp(Metrics.logProb(logits.data(), p * V, V, c)), within(1e-5));
                }
            }
            // random_context at p = 1 has no background: the same as two_key
            assertThat(TrigramExtractor.distribution(w, 2, 3, 1, TrigramExtractor.Background.RANDOM_CONTEXT))
                    .containsExactly(TrigramExtractor.distribution(w, 2, 3, 1, TrigramExtractor.Background.TWO_KEY),
                            within(1e-12));
        }
    }

    @Test
    void findsTheTrigramsOfAFreshlyTrainedTinyModel() {
        Trainer t = TrigramExtractorTestModels.tiny();
        TrigramExtractor.Result r = TrigramExtractor.extract(t.weights());
        TrigramExtractor.Evaluation ev = TrigramExtractor.evaluate(r, new HookedTransformer(t.weights()), t.dataset());
        // measured: 20 extracted, all right (recall 0.83); the model gets all 24 by argmax, 20 of them with P(c) > 0.5
        assertThat(ev.vsDataset().precision()).isGreaterThan(0.95);
        assertThat(ev.vsDataset().recall()).isGreaterThan(0.7);
        assertThat(ev.vsModelConfident().recall()).isGreaterThan(0.9);
        assertWellFormed(r);
    }

    @Test
    void attentionOnlyAndLayerNormMultiHeadModelsGiveWellFormedResults() throws Exception {
        for (ModelConfig cfg : List.of(new ModelConfig(10, 8, 16, 1, 1, 8, 0, false),
                new ModelConfig(10, 8, 16, 1, 2, 8, 12, true), new ModelConfig(10, 3, 8, 1, 4, 2, 0, true))) {
            Weights w = Weights.init(cfg, 7);
            randomizeBiases(w, 8);
            // a threshold below 1/d_vocab extracts every pair, so every entry is explained
            TrigramExtractor.Result r = TrigramExtractor.extract(w, TrigramExtractor.Options.defaults()
                    .withThreshold(0.01));
            assertThat(r.trigrams()).as(cfg.toString()).hasSize(100);
            assertWellFormed(r);
            for (TrigramExtractor.Entry e : r.trigrams()) {
                assertThat(e.attnPrev()).hasSize(cfg.nHeads());
                assertThat(e.qkAdvantage()).hasSize(cfg.nHeads());
            }
            TrigramDataset ds = TrigramDataset.generate(10, cfg.nCtx(), 0.1, 3, 1);
            TrigramExtractor.Evaluation ev = TrigramExtractor.evaluate(r, new HookedTransformer(w), ds);
            assertThat(ev.vsDataset().nExtracted()).isEqualTo(100);
            assertThat(ev.vsDataset().nReference()).isEqualTo(ds.nTrigrams());
            JsonNode json = new ObjectMapper().valueToTree(r.toJson(3));
            assertThat(json.get("trigrams")).hasSize(3);
            assertThat(json.get("n_extracted").intValue()).isEqualTo(100);
        }
    }

    @Test
    void refusesWhatItCannotRead() {
        Weights twoLayers = Weights.init(new ModelConfig(10, 8, 16, 2, 1, 8, 12, false), 1);
        assertThatThrownBy(() -> TrigramExtractor.extract(twoLayers)).isInstanceOf(TrilensException.class)
                .hasMessageContaining("n_layers=2");
        Weights w = Weights.init(new ModelConfig(10, 8, 16, 1, 1, 8, 12, false), 1);
        assertThatThrownBy(() -> TrigramExtractor.extract(w, TrigramExtractor.Options.defaults().withPositions(8)))
                .isInstanceOf(TrilensException.class).hasMessage("query position 8 is outside [1, 7]: b at p needs "
                        + "a at p-1 inside the model's context of 8");
        assertThatThrownBy(() -> TrigramExtractor.Options.defaults().withThreshold(1))
                .isInstanceOf(TrilensException.class).hasMessageContaining("threshold must be > 0 and < 1");
        assertThat(TrigramExtractor.defaultPositions(50)).hasSize(16).startsWith(1).endsWith(48);
        assertThat(TrigramExtractor.defaultPositions(3)).containsExactly(1);
        assertThat(TrigramExtractor.defaultPositions(10)).containsExactly(1, 2, 3, 4, 5, 6, 7, 8);
    }

    static void assertWellFormed(TrigramExtractor.Result r) {
        int V = r.pairs().dVocab();
        assertThat(r.pairs().argmax()).hasSize(V * V);
        assertThat(r.pairs().confidence()).hasSize(V * V);
        double prev = Double.POSITIVE_INFINITY;
        for (TrigramExtractor.Entry e : r.trigrams()) {
            assertThat(e.confidence()).isGreaterThan(r.options().threshold()).isLessThanOrEqualTo(prev + 1e-12);
            prev = e.confidence();
            assertThat(r.completionOf(e.a(), e.b())).isEqualTo(e.c());
            assertThat(e.confidence()).isCloseTo(r.pairs().confidence()[r.pairs().idx(e.a(), e.b())], within(1e-5));
            assertThat(e.runnerUp()).isNotEqualTo(e.c());
            double sum = 0;
            for (double c : e.marginContributions()) {
                assertThat(c).isFinite();
                sum += c;
            }
            // the direct contributions add up to the margin exactly (up to float rounding of the weights)
            assertThat(sum).as("contributions of %s", e.explanation()).isCloseTo(e.logitMargin(), within(1e-6));
            assertThat(TrigramExtractor.CONTRIBUTIONS).contains(e.decidedBy());
            assertThat(e.explanation()).startsWith("QK: b attends a with ");
            for (double x : e.attnPrev()) {
                assertThat(x).isBetween(0.0, 1.0);
            }
        }
    }

    static java.util.Set<List<Integer>> asSet(int[][] triples) {
        java.util.Set<List<Integer>> out = new java.util.HashSet<>();
        for (int[] t : triples) {
            out.add(List.of(t[0], t[1], t[2]));
        }
        return out;
    }

    /** Weights.init leaves biases at zero; make them count. */
    static void randomizeBiases(Weights w, long seed) {
        Random rng = new Random(seed);
        for (var p : w.layout.params()) {
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            if (leaf.startsWith("b") || leaf.equals("w")) {
                for (int i = 0; i < p.size(); i++) {
                    w.data[p.offset() + i] += (float) (rng.nextGaussian() * 0.3);
                }
            }
        }
    }
}
