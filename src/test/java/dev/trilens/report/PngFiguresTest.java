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
            assertSvg(dir.resolve(name + ".svg"));
        }
        assertPng(dir.resolve("training_curves.png"));
        assertSvg(dir.resolve("training_curves.svg"));
        // a heatmap's cells stay vector shapes, not one embedded bitmap each (VectorGraphics2D's gradient quirk)
        String tt = Files.readString(dir.resolve("qk_token_token.svg"));
        int cells = analysis.at("/circuits/qk_circuit/heads/0/decomposition/token_token").size();
        assertThat(tt.split("<image", -1).length - 1).isLessThan(10);
        assertThat(tt.split("<(path|rect)", -1).length - 1).isGreaterThan(cells * cells);
        // a PNG and an SVG each; attn_pattern_seq1 and training_curves too
        assertThat(written).hasSize(2 * (ALWAYS.size() + 2));
        assertThat(written).allMatch(Files::isRegularFile);
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

    /**
     * Query 0 can attend only to key 0, so any pattern's row 0 is [1, masked, ...]: drawn at the top, its first cell
     * is the darkest colour and the rest of the row is the masked grey; the bottom row has no masked cell.
     */
    @Test
    void heatmapsPutRowZeroAtTheTopAndGreyTheMaskedCells() {
        var m = new com.fasterxml.jackson.databind.ObjectMapper().createArrayNode();
        m.addArray().add(1.0).add(0.0).add(0.0);
        m.addArray().add(0.5).add(0.5).add(0.0);
        m.addArray().add(0.0).add(0.0).add(1.0);
        PngFigures.HeatMap chart = PngFigures.heatmap("t", "key", "query", m, PngFigures.Scale.sequential(0, 1), true);
        chart.ringed = List.of(new int[] {2, 0});
        BufferedImage img = org.knowm.xchart.BitmapEncoder.getBufferedImage(chart);
        var b = chart.plotBounds();
        double w = b.getWidth() / 3, h = b.getHeight() / 3;
        java.util.function.BiFunction<Integer, Integer, Integer> cell = (r, c) ->
                img.getRGB((int) (b.getX() + (c + 0.5) * w), (int) (b.getY() + (r + 0.5) * h)) & 0xffffff;
        assertThat(cell.apply(0, 0)).as("row 0, key 0: attention 1").isEqualTo(0x7f0000);
        assertThat(cell.apply(0, 1)).as("row 0, key 1: masked").isEqualTo(PngFigures.MASKED.getRGB() & 0xffffff);
        assertThat(cell.apply(0, 2)).isEqualTo(PngFigures.MASKED.getRGB() & 0xffffff);
        assertThat(cell.apply(1, 2)).isEqualTo(PngFigures.MASKED.getRGB() & 0xffffff);
        assertThat(cell.apply(2, 2)).as("the last row is drawn at the bottom").isEqualTo(0x7f0000);
        assertThat(cell.apply(2, 1)).isNotEqualTo(PngFigures.MASKED.getRGB() & 0xffffff);
        // the ring's outline crosses the left edge's midpoint of cell [2][0], just inside it
        int ringX = (int) Math.round(b.getX() + 0.5 * w - (Math.min(w, h) - 1) / 2), ringY = (int) (b.getY() + 2.5 * h);
        boolean ring = false;
        for (int dx = -2; dx <= 2; dx++) {
            ring |= (img.getRGB(ringX + dx, ringY) & 0xffffff) == 0x08306b;
        }
        assertThat(ring).as("ring drawn on cell [2][0]").isTrue();
    }

    /** The dataset's prefixes when it is known, else the ones read from the weights. */
    @Test
    void prefixScoresRingTheDatasetsPrefixesOrTheExtractedOnes() {
        PngFigures.Prefixes known = PngFigures.prefixes(analysis);
        assertThat(known.pairs()).hasSize(analysis.at("/dataset/n_trigrams").asInt()).isNotEmpty();
        assertThat(known.what()).isEqualTo("the dataset's " + known.pairs().size() + " prefixes");
        // this random model has learned nothing to extract, so the table is given two rows
        var unknown = (com.fasterxml.jackson.databind.node.ObjectNode) analysis.deepCopy();
        unknown.remove("dataset");
        var rows = unknown.putObject("extraction").putObject("table").putArray("trigrams");
        rows.addObject().put("a", 3).put("b", 7).put("c", 1);
        rows.addObject().put("a", 5).put("b", 2).put("c", 9);
        PngFigures.Prefixes extracted = PngFigures.prefixes(unknown);
        JsonNode table = unknown.at("/extraction/table/trigrams");
        assertThat(extracted.pairs()).hasSize(table.size()).isNotEmpty();
        assertThat(extracted.what()).isEqualTo("the " + table.size() + " prefixes read from the weights");
        for (int i = 0; i < table.size(); i++) {
            assertThat(extracted.pairs().get(i)).containsExactly(table.get(i).path("a").asInt(),
                    table.get(i).path("b").asInt());
        }
    }

    @Test
    void colourBarEndsAreRoundedAndTicksThinned() {
        assertThat(PngFigures.roundUp(64.2057)).isEqualTo(65.0);
        assertThat(PngFigures.roundUp(0.07123)).isEqualTo(0.072);
        assertThat(PngFigures.roundUp(3.0)).isEqualTo(3.0);
        assertThat(PngFigures.ticks(50, true).get(0)).isBlank(); // row 49 at the bottom of the list, unlabelled
        assertThat(PngFigures.ticks(50, true).get(49)).isEqualTo("0");
        assertThat(PngFigures.ticks(50, true).get(4)).isEqualTo("45");
        assertThat(PngFigures.ticks(75, false).stream().filter(t -> !t.isBlank())).containsExactly("0", "10", "20",
                "30", "40", "50", "60", "70");
        assertThat(new java.util.HashSet<>(PngFigures.ticks(75, false))).hasSize(75);
    }

    /** Well-formed SVG of the figure's size with several colours drawn (read without fetching its DTD). */
    private static void assertSvg(Path p) throws Exception {
        assertThat(p).isRegularFile();
        var f = javax.xml.parsers.DocumentBuilderFactory.newInstance();
        f.setFeature("http://apache.org/xml/features/nonvalidating/load-external-dtd", false);
        org.w3c.dom.Document doc = f.newDocumentBuilder().parse(p.toFile());
        org.w3c.dom.Element svg = doc.getDocumentElement();
        assertThat(svg.getTagName()).isEqualTo("svg");
        assertThat(svg.getAttribute("viewBox")).isEqualTo("0 0 " + PngFigures.WIDTH + " " + PngFigures.HEIGHT);
        java.util.Set<String> fills = new java.util.HashSet<>();
        var all = doc.getElementsByTagName("*");
        java.util.regex.Pattern fill = java.util.regex.Pattern.compile("fill:\\s*(#[0-9a-fA-F]{6}|rgb\\([^)]*\\))");
        for (int i = 0; i < all.getLength(); i++) {
            var e = (org.w3c.dom.Element) all.item(i);
            var mt = fill.matcher(e.getAttribute("style") + ";fill:" + e.getAttribute("fill"));
            while (mt.find()) {
                fills.add(mt.group(1).toLowerCase());
            }
        }
        assertThat(fills).as("%s draws in several colours, not blank", p).hasSizeGreaterThanOrEqualTo(3);
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
