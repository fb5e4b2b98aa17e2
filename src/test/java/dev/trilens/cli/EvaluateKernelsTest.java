package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.io.Safetensors;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * evaluate as the launcher runs it, in a fresh JVM with no kernel override: a short job on the scalar kernels, a long
 * one on the vector kernels, and the same metrics as this JVM's (the tests pin the vector kernels) up to the last
 * digits.
 */
class EvaluateKernelsTest extends CliTestBase {

    @TempDir
    Path tmp;

    private record Fresh(JsonNode metrics, String classesLoaded) {
    }

    private Fresh evaluateInAFreshJvm(Path model, int size) throws Exception {
        Path classes = tmp.resolve("classes-" + size + ".log");
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "-Xlog:class+load:file=" + classes,
                "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "evaluate", "--model", model.toString(), "--size", Integer.toString(size), "--json");
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(out).isZero();
        return new Fresh(new ObjectMapper().readTree(out), Files.readString(classes));
    }

    private void assertSameMetrics(JsonNode fresh, JsonNode here) {
        for (Map.Entry<String, JsonNode> e : (Iterable<Map.Entry<String, JsonNode>>) here::fields) {
            JsonNode v = fresh.get(e.getKey());
            if (e.getValue().isInt()) {
                assertThat(v.intValue()).as(e.getKey()).isEqualTo(e.getValue().intValue());
            } else {
                assertThat(v.doubleValue()).as(e.getKey()).isCloseTo(e.getValue().doubleValue(),
                        within(1e-6 * Math.max(1, Math.abs(e.getValue().doubleValue()))));
            }
        }
    }

    @Test
    void aShortEvaluateRunsTheScalarKernelsALongOneTheVectorOnesWithTheSameMetrics() throws Exception {
        ModelConfig cfg = ModelConfig.arena();
        Path model = tmp.resolve("model.safetensors");
        Safetensors.write(Weights.init(cfg, 7), Map.of(), model);
        // 2e9 multiply-adds is ~6,100 sequences of this shape
        int shortJob = 200, longJob = 7000;
        assertThat((double) longJob * cfg.nCtx() * cfg.tokenMultiplyAdds()).isGreaterThan(2e9);

        Fresh small = evaluateInAFreshJvm(model, shortJob);
        assertThat(small.classesLoaded()).contains("dev.trilens.model.kernels.ScalarOps ")
                .doesNotContain("dev.trilens.model.kernels.VectorOps ");
        assertThat(run("evaluate", "--model", model.toString(), "--size", Integer.toString(shortJob), "--json"))
                .as(err()).isZero();
        assertSameMetrics(small.metrics(), new ObjectMapper().readTree(out()));

        Fresh large = evaluateInAFreshJvm(model, longJob);
        assertThat(large.classesLoaded()).contains("dev.trilens.model.kernels.VectorOps ");
        assertThat(run("evaluate", "--model", model.toString(), "--size", Integer.toString(longJob), "--json"))
                .as(err()).isZero();
        assertThat(new ObjectMapper().readTree(out())).as("the same kernels: the same numbers, to the last bit")
                .isEqualTo(large.metrics());
    }
}
