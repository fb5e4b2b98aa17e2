package dev.trilens.train;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TorchPython;
import dev.trilens.io.Checkpoints;
import dev.trilens.io.TorchCheckpoint;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** model.pt as train --export-pt writes it: the run's weights, read back by trilens and by PyTorch itself. */
class ExportPtTest {

    private static final Trainer.Listener QUIET = new Trainer.Listener() {
    };

    /**
     * Loads the file as a user would (weights_only, the safe loader that refuses arbitrary pickles) and reports each
     * tensor's dtype, shape, first values and float64 sum, in the dict's order.
     */
    private static final String TORCH_SCRIPT = """
            import json, sys, torch
            sd = torch.load(sys.argv[1], weights_only=True)
            tensors = []
            for k, t in sd.items():
                d = t.double()
                tensors.append({"key": k, "dtype": str(t.dtype), "shape": list(t.shape),
                                "contiguous": t.is_contiguous(), "first": t.flatten()[:4].tolist(),
                                "sum": d.sum().item(), "abs_sum": d.abs().sum().item()})
            print(json.dumps({"type": type(sd).__name__, "tensors": tensors}))
            """;

    @TempDir
    Path tmp;

    @Test
    void modelPtFollowsTheRunBitForBit() {
        Path dir = tmp.resolve("run");
        Trainer t = Trainer.start(TrainerTest.TINY.withEpochs(3), dir).exportPt();
        assertThat(dir.resolve(Trainer.MODEL_PT)).as("nothing to export before the first epoch").doesNotExist();
        t.run(QUIET, 1);
        assertSameWeights(dir, t.weights());

        // a resumed run keeps exporting without being asked again, so model.pt never lags model.safetensors
        Trainer resumed = Trainer.resume(dir);
        assertThat(resumed.exportsPt()).isTrue();
        resumed.run(QUIET);
        assertSameWeights(dir, resumed.weights());
        assertThat(resumed.weights().data).isNotEqualTo(t.weights().data);

        Path plain = tmp.resolve("plain");
        Trainer p = Trainer.start(TrainerTest.TINY.withEpochs(1).withDMlp(0), plain);
        p.run(QUIET);
        assertThat(plain.resolve(Trainer.MODEL_PT)).doesNotExist();
        assertThat(Trainer.resume(plain).exportsPt()).isFalse();
        // asked for after the fact, it exports the committed weights at once
        Trainer.resume(plain).exportPt();
        assertSameWeights(plain, p.weights());
        assertThat(TorchCheckpoint.readStateDict(plain.resolve(Trainer.MODEL_PT)).keySet())
                .as("attention-only: no MLP keys").noneMatch(k -> k.contains("mlp"));
    }

    private static void assertSameWeights(Path dir, Weights expected) {
        Weights pt = TorchCheckpoint.load(dir.resolve(Trainer.MODEL_PT));
        assertThat(pt.cfg).isEqualTo(expected.cfg);
        assertThat(bits(pt.data)).isEqualTo(bits(expected.data));
        assertThat(bits(Checkpoints.load(dir.resolve(Trainer.MODEL)).weights().data)).isEqualTo(bits(pt.data));
    }

    private static int[] bits(float[] a) {
        int[] b = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            b[i] = Float.floatToRawIntBits(a[i]);
        }
        return b;
    }

    @Tag("end-to-end")
    @Test
    void torchLoadsTheExportWithWeightsOnly() throws Exception {
        TorchPython.assumeAvailable("check model.pt with PyTorch itself");
        Path dir = tmp.resolve("run");
        Trainer t = Trainer.start(TrainerTest.TINY.withEpochs(1), dir).exportPt();
        t.run(QUIET);
        Weights w = t.weights();

        String output = TorchPython.run(tmp, TORCH_SCRIPT, dir.resolve(Trainer.MODEL_PT).toString());
        JsonNode report = new ObjectMapper().readTree(output);
        assertThat(report.get("type").asText()).isEqualTo("OrderedDict");
        List<String> keys = new ArrayList<>();
        report.get("tensors").forEach(n -> keys.add(n.get("key").asText()));
        assertThat(keys).containsExactlyElementsOf(w.layout.params().stream().map(ParamLayout.Param::name).toList());

        for (JsonNode n : report.get("tensors")) {
            ParamLayout.Param p = w.layout.get(n.get("key").asText());
            String what = p.name();
            assertThat(n.get("dtype").asText()).as(what).isEqualTo("torch.float32");
            assertThat(n.get("contiguous").asBoolean()).as(what).isTrue();
            List<Integer> shape = new ArrayList<>();
            n.get("shape").forEach(d -> shape.add(d.asInt()));
            assertThat(shape).as(what).containsExactlyElementsOf(java.util.Arrays.stream(p.shape()).boxed().toList());
            float[] values = w.copyOf(p.name());
            JsonNode first = n.get("first");
            assertThat(first.size()).as(what).isEqualTo(Math.min(4, values.length));
            for (int i = 0; i < first.size(); i++) {
                // a float32 widened to a Python float is exact, so the bits must match
                assertThat(Float.floatToRawIntBits((float) first.get(i).asDouble())).as(what + "[" + i + "]")
                        .isEqualTo(Float.floatToRawIntBits(values[i]));
            }
            double sum = 0, absSum = 0;
            for (float v : values) {
                sum += v;
                absSum += Math.abs(v);
            }
            // the two sides add in different orders; relative to the magnitudes added, they agree far below 1e-6
            assertThat(n.get("sum").asDouble()).as(what + " sum").isCloseTo(sum,
                    org.assertj.core.api.Assertions.within(1e-6 * absSum));
            assertThat(n.get("abs_sum").asDouble()).as(what + " abs sum").isCloseTo(absSum,
                    org.assertj.core.api.Assertions.within(1e-6 * absSum));
        }
    }
}
