package dev.trilens.interp;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.NormOps_DDRM;
import org.junit.jupiter.api.Test;

class OvCircuitTest {

    static DMatrixRMaj mult(DMatrixRMaj a, DMatrixRMaj b) {
        DMatrixRMaj out = new DMatrixRMaj(a.numRows, b.numCols);
        CommonOps_DDRM.mult(a, b, out);
        return out;
    }

    @Test
    void fullOvCircuitIsTheDenseProduct() throws Exception {
        HookedTransformer model = CircuitsTestModels.model(CircuitsTestModels.ATTN_ONLY_NO_LN, 4);
        Weights w = model.weights();
        OvCircuit ov = OvCircuit.compute(new AnalysisContext(model, null));
        assertThat(ov.heads()).hasSize(2);
        for (int h = 0; h < 2; h++) {
            OvCircuit.Head head = ov.heads().get(h);
            DMatrixRMaj ovDense = mult(WeightMatrices.headMatrix(w, "blocks.0.attn.W_V", h),
                    WeightMatrices.headMatrix(w, "blocks.0.attn.W_O", h));
            DMatrixRMaj full = mult(mult(WeightMatrices.matrix(w, "embed.W_E"), ovDense), WeightMatrices.matrix(w, "unembed.W_U"));
            for (int x = 0; x < 9; x++) {
                for (int v = 0; v < 9; v++) {
                    assertThat(head.fullOv()[x][v]).isCloseTo((float) full.get(x, v), within(1e-5f));
                }
            }
            assertThat(head.ovFrobeniusNorm()).isCloseTo(NormOps_DDRM.normF(ovDense), within(1e-9));
            assertThat(head.ovSingularValues()).hasSize(3); // d_head
            assertThat(head.ovEigenvalues()).hasNumberOfRows(3);
            double[] denseS = FactoredMatrix.denseSvd(full).s();
            for (int i = 0; i < head.fullOvSingularValues().length; i++) {
                assertThat(head.fullOvSingularValues()[i]).isCloseTo(denseS[i], within(1e-8));
            }
            assertThat(head.copyingScore()).isBetween(-1.0, 1.0);
            assertThat(head.topBoosted()).hasDimensions(9, OvCircuit.TOP_K);
            // the top boosted token of row x is the argmax of the row
            for (int x = 0; x < 9; x++) {
                int arg = 0;
                for (int v = 1; v < 9; v++) {
                    arg = head.fullOv()[x][v] > head.fullOv()[x][arg] ? v : arg;
                }
                assertThat(head.topBoosted()[x][0]).isEqualTo(arg);
            }
            assertThat(head.trigramDirectEffect()).isNull();
        }
        JsonNode json = new ObjectMapper().valueToTree(ov);
        assertThat(json.get("heads").get(0).has("full_ov_singular_values")).isTrue();
        assertThat(json.get("heads").get(0).has("copying_score")).isTrue();
    }

    @Test
    void aCopyingHeadHasCopyingScoreOne() {
        // W_E = W_U^T = identity-like, W_V W_O = identity on the residual: the full OV circuit is the identity
        dev.trilens.model.ModelConfig cfg = new dev.trilens.model.ModelConfig(4, 3, 4, 1, 1, 4, 0, false);
        Weights w = new Weights(cfg);
        for (String name : new String[] {"embed.W_E", "unembed.W_U", "blocks.0.attn.W_V", "blocks.0.attn.W_O"}) {
            int off = w.offset(name);
            for (int i = 0; i < 4; i++) {
                w.data[off + i * 4 + i] = 1f;
            }
        }
        OvCircuit.Head head = OvCircuit.head(w, 0, 0, null);
        assertThat(head.copyingScore()).isCloseTo(1, within(1e-12));
        assertThat(head.fracSelfTop1()).isEqualTo(1);
    }

    @Test
    void challengeModel() {
        OvCircuit ov = OvCircuit.compute(new AnalysisContext(CircuitsTestModels.challenge(),
                CircuitsTestModels.challengeData()));
        OvCircuit.Head head = ov.heads().get(0);
        System.out.println("challenge OV: " + String.join("\n  ", ov.summary()));
        assertThat(head.ovSingularValues()).hasSize(16);
        // measured: OV singular values 3.521, 2.796, 2.315, ...; full OV 63.1, 57.6, 41.3, ...
        assertThat(head.ovSingularValues()[0]).isBetween(3.0, 4.0);
        assertThat(head.fullOvSingularValues()[0]).isBetween(55.0, 70.0);
        // not a copying head: the attended token's own logit is not what it raises (copying score -0.07)
        assertThat(head.copyingScore()).isLessThan(0.3);
        // directly, copying a already favours its trigram's completion c (mean rank 18.8 vs chance 37)
        OvCircuit.DirectEffect e = head.trigramDirectEffect();
        assertThat(e.nTrigrams()).isEqualTo(277);
        assertThat(e.meanRank()).isLessThan(e.chanceMeanRank() - 10);
    }
}
