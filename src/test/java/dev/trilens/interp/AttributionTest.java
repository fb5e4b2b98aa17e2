package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.Fixtures;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.Checkpoints;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Tensor;
import dev.trilens.model.Weights;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class AttributionTest {

    static Stream<ModelConfig> configs() {
        return Stream.of(
                new ModelConfig(9, 10, 16, 1, 1, 8, 12, false),    // the challenge's shape, smaller
                new ModelConfig(11, 9, 12, 1, 1, 4, 0, false),     // attention-only
                new ModelConfig(13, 8, 12, 2, 3, 4, 10, true),     // LayerNorm, 2 layers, 3 heads
                new ModelConfig(7, 6, 8, 2, 2, 4, 0, true));       // LayerNorm, attention-only
    }

    /** Random biases and LayerNorm weights, so every component (and the LN scale) matters. */
    static Weights randomWeights(ModelConfig cfg, long seed) {
        Weights w = Weights.init(cfg, seed);
        Random r = new Random(seed + 1);
        for (ParamLayout.Param p : w.layout.params()) {
            String leaf = p.name().substring(p.name().lastIndexOf('.') + 1);
            if (leaf.startsWith("b") || leaf.equals("w")) {
                for (int i = 0; i < p.size(); i++) {
                    w.data[p.offset() + i] = (float) ((leaf.equals("w") ? 1 : 0) + 0.5 * r.nextGaussian());
                }
            }
        }
        return w;
    }

    @ParameterizedTest
    @MethodSource("configs")
    void componentsSumToTheCorrectLogitMinusTheMeanLogit(ModelConfig cfg) {
        HookedTransformer model = new HookedTransformer(randomWeights(cfg, 5));
        int B = 6, T = cfg.nCtx(), V = cfg.dVocab();
        TrigramDataset data = TrigramDataset.generate(V, T, 0.2, 2, B);
        Attribution.Table table = Attribution.perPosition(model, data.tokens(), B, T);
        float[] logits = model.forward(data.tokens(), B, T).data();
        int expectedComponents = 2 + cfg.nLayers() * (cfg.nHeads() + 1 + (cfg.attnOnly() ? 0 : 1))
                + (cfg.layerNorm() ? 1 : 0) + 1;
        assertThat(table.names()).hasSize(expectedComponents).startsWith("embed", "pos_embed", "L0H0")
                .endsWith("b_U");
        for (int s = 0; s < B; s++) {
            for (int p = 0; p < T - 1; p++) {
                int row = (s * T + p) * V, tgt = data.token(s, p + 1);
                double mean = 0;
                for (int v = 0; v < V; v++) {
                    mean += logits[row + v];
                }
                double expected = logits[row + tgt] - mean / V;
                double sum = 0;
                for (double[] c : table.values()) {
                    sum += c[s * (T - 1) + p];
                }
                assertThat(sum).as("%s s=%d p=%d", cfg, s, p).isCloseTo(expected, within(1e-4));
                assertThat(table.actual()[s * (T - 1) + p]).isCloseTo(expected, within(1e-5));
            }
        }
        assertThat(table.maxSumError()).isLessThan(1e-4);
    }

    @ParameterizedTest
    @MethodSource("configs")
    void oneReadoutOverBatchesInTurnGivesEachBatchsOwnTable(ModelConfig cfg) {
        HookedTransformer model = new HookedTransformer(randomWeights(cfg, 8));
        int B = 4, T = cfg.nCtx();
        Attribution.Readout readout = new Attribution.Readout(model);
        for (int batch = 0; batch < 3; batch++) {
            TrigramDataset data = TrigramDataset.generate(cfg.dVocab(), T, 0.2, 10 + batch, B);
            java.util.function.IntBinaryOperator next = (s, p) -> data.token(s, p + 1);
            HookedTransformer.Run pass = model.run(data.tokens(), B, T, Attribution.cachedWithoutLogits(cfg),
                    java.util.List.of(), false);
            Attribution.Table reused = readout.perPosition(pass, B, T, T - 1, next);
            Attribution.Table fresh = Attribution.perPosition(model, data.tokens(), B, T, T - 1, next);
            assertThat(reused.names()).isEqualTo(fresh.names());
            assertThat(reused.sources()).isEqualTo(fresh.sources());
            for (int c = 0; c < fresh.names().size(); c++) {
                assertThat(reused.values()[c]).as("%s batch %d %s", cfg, batch, fresh.names().get(c))
                        .containsExactly(fresh.values()[c]);
            }
            assertThat(reused.maxSumError()).isLessThan(1e-4);
        }
    }

    @ParameterizedTest
    @MethodSource("configs")
    void aPassWithoutLogitsGivesTheSameAttributionAndActualDifferences(ModelConfig cfg) {
        HookedTransformer model = new HookedTransformer(randomWeights(cfg, 6));
        int B = 5, T = cfg.nCtx();
        TrigramDataset data = TrigramDataset.generate(cfg.dVocab(), T, 0.2, 3, B);
        java.util.function.IntBinaryOperator next = (s, p) -> p % 3 == 1 ? -1 : data.token(s, p + 1);
        Attribution.Table withLogits = Attribution.perPosition(model, data.tokens(), B, T, T - 1, next);
        HookedTransformer.Run pass = model.run(data.tokens(), B, T, Attribution.cachedWithoutLogits(cfg),
                java.util.List.of(), false);
        assertThat(pass.logits()).isNull();
        Attribution.Table without = Attribution.perPosition(model, pass, B, T, T - 1, next);
        assertThat(without.names()).isEqualTo(withLogits.names());
        int attributed = 0;
        for (int i = 0; i < B * (T - 1); i++) {
            for (int c = 0; c < withLogits.names().size(); c++) {
                assertThat(without.values()[c][i]).isEqualTo(withLogits.values()[c][i]);
            }
            if (i % (T - 1) % 3 != 1) {
                attributed++;
                assertThat(without.actual()[i]).as("%s position %d", cfg, i).isNotZero()
                        .isCloseTo(withLogits.actual()[i], within(1e-4));
            }
        }
        assertThat(attributed).isGreaterThan(B);
        assertThat(without.maxSumError()).isLessThan(1e-4);
    }

    @Test
    void embeddingAttributionIsTheEmbeddingDottedWithTheCentredUnembed() {
        ModelConfig cfg = new ModelConfig(9, 10, 16, 1, 1, 8, 12, false);
        Weights w = randomWeights(cfg, 8);
        HookedTransformer model = new HookedTransformer(w);
        int[] tokens = {3, 1, 4, 1, 5, 2, 6, 5, 3, 5};
        Attribution.Table table = Attribution.perPosition(model, tokens, 1, 10);
        int D = 16, V = 9, p = 4, tok = tokens[p], tgt = tokens[p + 1];
        double expected = 0;
        for (int d = 0; d < D; d++) {
            double mean = 0;
            for (int v = 0; v < V; v++) {
                mean += w.data[w.offset("unembed.W_U") + d * V + v];
            }
            expected += w.data[w.offset("embed.W_E") + tok * D + d]
                    * (w.data[w.offset("unembed.W_U") + d * V + tgt] - mean / V);
        }
        assertThat(table.values()[0][p]).isCloseTo(expected, within(1e-5));
    }

    @Test
    void groupMeansAddUpAndSerializeToDocumentedKeys() throws Exception {
        ModelConfig cfg = new ModelConfig(13, 8, 12, 2, 3, 4, 10, true);
        HookedTransformer model = new HookedTransformer(randomWeights(cfg, 3));
        TrigramDataset data = TrigramDataset.generate(13, 8, 0.2, 4, 30);
        Attribution a = Attribution.compute(new AnalysisContext(model, data));
        assertThat(a.layerNormScaled()).isTrue();
        assertThat(a.nTrigramPositions()).isPositive();
        assertThat(a.nTrigramPositions() + a.nOtherPositions()).isEqualTo(30 * 7);
        double tri = 0, other = 0;
        for (Attribution.Component c : a.components()) {
            tri += c.meanTrigram();
            other += c.meanOther();
        }
        assertThat(tri).isCloseTo(a.totalTrigram(), within(1e-4));
        assertThat(other).isCloseTo(a.totalOther(), within(1e-4));
        assertThat(a.components()).extracting(Attribution.Component::name).contains("ln_final.b", "L1H2",
                "L1.b_O", "L1.mlp_out");
        JsonNode json = new ObjectMapper().valueToTree(a);
        assertThat(json.fieldNames()).toIterable().containsExactly("direction", "layer_norm_scaled",
                "n_trigram_positions", "n_other_positions", "components", "total_trigram", "total_other", "total_all",
                "max_sum_error", "summary");
        assertThat(json.get("components").get(0).fieldNames()).toIterable().containsExactly("name", "source",
                "mean_trigram", "mean_other", "mean_all");
    }

    @Test
    void componentMeansAreThePerPositionValuesAveragedOverEachClass() {
        ModelConfig cfg = new ModelConfig(9, 10, 16, 1, 1, 8, 12, false);
        HookedTransformer model = new HookedTransformer(randomWeights(cfg, 7));
        TrigramDataset data = TrigramDataset.generate(9, 10, 0.3, 2, 40);
        Attribution a = Attribution.compute(new AnalysisContext(model, data));
        Attribution.Table table = Attribution.perPosition(model, data.tokens(), 40, 10);
        int T = 10, nTri = 0;
        boolean[] tri = new boolean[40 * (T - 1)];
        for (int s = 0; s < 40; s++) {
            for (int p = 0; p < T - 1; p++) {
                tri[s * (T - 1) + p] = data.completesTrigram(s, p + 1);
                nTri += tri[s * (T - 1) + p] ? 1 : 0;
            }
        }
        // both classes present, or the means below check nothing
        assertThat(nTri).isBetween(1, tri.length - 1);
        assertThat(a.nTrigramPositions()).isEqualTo(nTri);
        assertThat(a.nOtherPositions()).isEqualTo(tri.length - nTri);
        String best = null;
        double bestGap = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < table.names().size(); c++) {
            double sumTri = 0, sumOther = 0;
            for (int i = 0; i < tri.length; i++) {
                if (tri[i]) {
                    sumTri += table.values()[c][i];
                } else {
                    sumOther += table.values()[c][i];
                }
            }
            Attribution.Component comp = a.components().get(c);
            assertThat(comp.name()).isEqualTo(table.names().get(c));
            assertThat(comp.meanTrigram()).as(comp.name()).isCloseTo(sumTri / nTri, within(1e-9));
            assertThat(comp.meanOther()).as(comp.name()).isCloseTo(sumOther / (tri.length - nTri), within(1e-9));
            assertThat(comp.meanAll()).as(comp.name()).isCloseTo((sumTri + sumOther) / tri.length, within(1e-9));
            if (sumTri / nTri - sumOther / (tri.length - nTri) > bestGap) {
                bestGap = sumTri / nTri - sumOther / (tri.length - nTri);
                best = comp.name();
            }
        }
        double actualTri = 0, actualAll = 0;
        for (int i = 0; i < tri.length; i++) {
            actualTri += tri[i] ? table.actual()[i] : 0;
            actualAll += table.actual()[i];
        }
        assertThat(a.totalTrigram()).isCloseTo(actualTri / nTri, within(1e-9));
        assertThat(a.totalAll()).isCloseTo(actualAll / tri.length, within(1e-9));
        assertThat(a.summary().get(a.summary().size() - 1)).startsWith("  " + best + " adds the most at trigram "
                + "positions").contains(String.format(java.util.Locale.ROOT, "(%+.3f)", bestGap));
    }

    @Test
    void challengeModel() {
        HookedTransformer model = new HookedTransformer(Checkpoints.load(Fixtures.challengeModel()).weights());
        TrigramDataset data = TrigramDataset.generate(75, 50, 0.05, 40, 2500);
        Attribution a = Attribution.compute(new AnalysisContext(model, data));
        assertThat(a.maxSumError()).isLessThan(1e-3);
        assertThat(a.components()).extracting(Attribution.Component::name)
                .containsExactly("embed", "pos_embed", "L0H0", "L0.b_O", "L0.mlp_out", "b_U");
        // measured: at trigram positions the MLP writes +30.7 of the +33.4 logit difference, the embedding +1.6 and
        // the head +1.2; elsewhere every component is ~0
        Attribution.Component mlp = a.components().get(4);
        assertThat(mlp.meanTrigram()).isGreaterThan(25);
        assertThat(Math.abs(mlp.meanOther())).isLessThan(0.1);
        assertThat(a.totalTrigram()).isCloseTo(33.43, within(0.05));
    }
}
