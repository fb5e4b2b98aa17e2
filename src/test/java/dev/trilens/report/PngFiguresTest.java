package dev.trilens.report;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Analysis;
import dev.trilens.interp.AnalysisContext;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.awt.image.BufferedImage;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PngFiguresTest {
    static final List<String> ALWAYS = List.of("sample_probs", "attn_pattern_seq0", "prev_token_attention",
            "qk_token_token", "qk_pos_pos", "prefix_scores", "wpos_similarity", "ov_svd", "dla");
    private static JsonNode analysis;

    @TempDir
    Path tmp;

    @BeforeAll
    static void analyze() {
        ModelConfig cfg = new ModelConfig(13, 12, 16, 1, 1, 8, 12, false);
        Weights w = Weights.init(cfg, 1);
        TrigramDataset data = TrigramDataset.generate(13, 12, 0.05, 40, 40);
        Analysis a = Analysis.run(new AnalysisContext(new HookedTransformer(w), data), s -> { });
        analysis = Analysis.mapper().valueToTree(a.toJson("random", cfg, data));
    }

    @Test
    void writesEveryFigureAsAReadablePng() throws Exception {
        Path metrics = tmp.resolve("metrics.jsonl");
        Files.writeString(metrics, "{\"epoch\":1,\"train_loss\":2.5,\"train_loss_as_frac\":0.9,\"val_loss\":2.6,"
                + "\"trigram_frac_correct\":0.2}\n{\"epoch\":2,\"train_loss\":2.4,\"train_loss_as_frac\":0.7,"
                + "\"val_loss\":2.5,\"trigram_frac_correct\":0.6}\n");
        Path dir = tmp.resolve("figures");
        List<Path> written = PngFigures.writeAll(analysis, metrics, dir);
        for (String name : ALWAYS) {
            assertPng(dir.resolve(name + ".png"));
        }
        assertPng(dir.resolve("training_curves.png"));
        assertThat(written).hasSize(ALWAYS.size() + 2); // attn_pattern_seq1 and training_curves too
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).noneMatch(n -> n.contains(".tmp"));
        }
    }

    @Test
    void noTrainingCurvesWithoutMetrics() {
        Path dir = tmp.resolve("no-metrics");
        PngFigures.writeAll(analysis, null, dir);
        assertThat(dir.resolve("training_curves.png")).doesNotExist();
        assertThat(dir.resolve("dla.png")).isRegularFile();
    }

    private static void assertPng(Path p) throws Exception {
        assertThat(p).isRegularFile();
        BufferedImage img = ImageIO.read(new File(p.toString()));
        assertThat(img).as(p.toString()).isNotNull();
        assertThat(img.getWidth()).isEqualTo(PngFigures.WIDTH);
        assertThat(img.getHeight()).isEqualTo(PngFigures.HEIGHT);
        int first = img.getRGB(0, 0);
        boolean varied = false;
        for (int y = 0; y < img.getHeight() && !varied; y += 7) {
            for (int x = 0; x < img.getWidth() && !varied; x += 7) {
                varied = img.getRGB(x, y) != first;
            }
        }
        assertThat(varied).as("%s is not blank", p).isTrue();
    }
}
