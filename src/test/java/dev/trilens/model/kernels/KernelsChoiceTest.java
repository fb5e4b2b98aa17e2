package dev.trilens.model.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.model.ModelConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class KernelsChoiceTest {

    @Test
    void aForwardPassCostsItsMatrixProductsAndTheCausalAttentionPerToken() {
        // QKV and O 4*32*16, scores and values 16 * 51 (keys 1..50, averaged), MLP 2*32*20, unembed 32*75
        assertThat(ModelConfig.arena().tokenMultiplyAdds()).isEqualTo(2048 + 816 + 1280 + 2400);
        ModelConfig twoLayers = new ModelConfig(75, 50, 32, 2, 1, 16, 20, false);
        assertThat(twoLayers.tokenMultiplyAdds()).isEqualTo(2 * (2048 + 816 + 1280) + 2400);
        // evaluate's default 2500 sequences are a short job, 10,000 (where the two kernels took as long) are not
        double perSequence = 50.0 * ModelConfig.arena().tokenMultiplyAdds();
        assertThat(2500 * perSequence).isLessThan(Kernels.SHORT_JOB_MULTIPLY_ADDS);
        assertThat(10_000 * perSequence).isGreaterThan(Kernels.SHORT_JOB_MULTIPLY_ADDS);
    }

    /** The kernels' class in a fresh JVM (chosen once per process) after the steps given. */
    private static String kernelsInAFreshJvm(String property, String... steps) throws IOException,
            InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "--add-modules", "jdk.incubator.vector", "-cp", System.getProperty("java.class.path")));
        if (property != null) {
            cmd.add(property);
        }
        cmd.add(Probe.class.getName());
        cmd.addAll(List.of(steps));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(out).isZero();
        return out;
    }

    @Test
    void aShortJobRunsTheScalarReferenceALongOneOrAnUnknownOneTheVectorKernels() throws Exception {
        assertThat(kernelsInAFreshJvm(null)).isEqualTo("VectorOps");
        assertThat(kernelsInAFreshJvm(null, "work", "1e8")).isEqualTo("ScalarOps");
        assertThat(kernelsInAFreshJvm(null, "work", "1e10")).isEqualTo("VectorOps");
        // once a kernel ran, the choice holds
        assertThat(kernelsInAFreshJvm(null, "kernels", "work", "1e8")).isEqualTo("VectorOps");
    }

    @Test
    void thePropertyOverridesTheChoice() throws Exception {
        assertThat(kernelsInAFreshJvm("-Dtrilens.kernels=vector", "work", "1e8")).isEqualTo("VectorOps");
        assertThat(kernelsInAFreshJvm("-Dtrilens.kernels=scalar", "work", "1e10")).isEqualTo("ScalarOps");
        assertThat(kernelsInAFreshJvm("-Dtrilens.scalar=true")).isEqualTo("ScalarOps");
    }

    /** Runs the steps (work N: Kernels.preferForWork(N); kernels: the kernels' first use), prints their class. */
    public static final class Probe {
        public static void main(String[] args) {
            for (int i = 0; i < args.length; i++) {
                if (args[i].equals("work")) {
                    Kernels.preferForWork(Double.parseDouble(args[++i]));
                } else {
                    Kernels.ops();
                }
            }
            System.out.println(Kernels.ops().getClass().getSimpleName());
        }
    }
}
