package dev.trilens.model.kernels;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

class VectorWidthTest {

    @Test
    void eightFloatVectorsOnlyForAHeadThatIsWholeEightsButNotWholeWideVectors() {
        assertThat(VectorWidth.bitsFor(8, 512)).isEqualTo(256);
        assertThat(VectorWidth.bitsFor(24, 512)).isEqualTo(256);
        assertThat(VectorWidth.bitsFor(16, 512)).isEqualTo(512);
        assertThat(VectorWidth.bitsFor(32, 512)).isEqualTo(512);
        assertThat(VectorWidth.bitsFor(12, 512)).as("not whole 8-float vectors either").isEqualTo(512);
        assertThat(VectorWidth.bitsFor(8, 256)).as("AVX2: already the widest").isEqualTo(256);
        assertThat(VectorWidth.bitsFor(4, 256)).isEqualTo(256);
    }

    /** The kernels' lanes in a fresh JVM (the width is fixed once per process): after preferring d_head's, or not. */
    private static int lanesInAFreshJvm(String... steps) throws IOException, InterruptedException {
        List<String> cmd = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin",
                "java").toString(), "--add-modules", "jdk.incubator.vector", "-cp",
                System.getProperty("java.class.path"), Probe.class.getName()));
        cmd.addAll(List.of(steps));
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as(out).isZero();
        return Integer.parseInt(out);
    }

    @Test
    void aCommandsHeadChoosesTheWidthBeforeTheFirstKernelAndNotAfter() throws Exception {
        int widest = FloatVector.SPECIES_PREFERRED.length();
        int narrowed = widest > 8 ? 8 : widest;
        assertThat(lanesInAFreshJvm("prefer", "8")).isEqualTo(narrowed);
        assertThat(lanesInAFreshJvm("prefer", "16")).isEqualTo(widest);
        // the first preference holds; once a kernel ran, the width no longer changes
        assertThat(lanesInAFreshJvm("prefer", "16", "prefer", "8")).isEqualTo(widest);
        assertThat(lanesInAFreshJvm("kernels", "prefer", "8")).isEqualTo(widest);
    }

    /** Runs the steps given (prefer N: VectorWidth.preferFor(N); kernels: the kernels' first use), prints the lanes. */
    public static final class Probe {
        public static void main(String[] args) {
            for (int i = 0; i < args.length; i++) {
                if (args[i].equals("prefer")) {
                    VectorWidth.preferFor(Integer.parseInt(args[++i]));
                } else {
                    Kernels.ops().lanes();
                }
            }
            System.out.println(Kernels.ops().lanes());
        }
    }
}
