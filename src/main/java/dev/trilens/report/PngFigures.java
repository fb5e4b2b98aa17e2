package dev.trilens.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import dev.trilens.TrilensException;
import dev.trilens.model.Parallel;
import dev.trilens.data.TrigramDataset;
import dev.trilens.io.AtomicFiles;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Rectangle2D;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.HeatMapChart;
import org.knowm.xchart.HeatMapChartBuilder;
import org.knowm.xchart.HeatMapSeries;
import org.knowm.xchart.VectorGraphicsEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.AxesChartStyler;
import org.knowm.xchart.style.HeatMapStyler;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * The analysis as figures (XChart), each as a PNG and as an SVG of the same name, from analysis.json's tree: what a
 * reader looks at first, with the numbers in analysis.json beside them. Each file is written whole or not at all.
 */
public final class PngFigures {
    public static final int WIDTH = 900, HEIGHT = 700;
    /** How many sequences the probability heatmap shows. */
    static final int SAMPLE_SEQUENCES = 40;
    private static final Color[] DIVERGING = {new Color(0x2166ac), new Color(0xf7f7f7), new Color(0xb2182b)};
    private static final Color[] SEQUENTIAL = {new Color(0xfff7ec), new Color(0xfc8d59), new Color(0x7f0000)};
    /** Masked (non-causal) cells, as CircuitsVis greys them. */
    static final Color MASKED = new Color(0xbdbdbd);
    private static final Color RING = new Color(0x08306b);

    private PngFigures() {
    }

    /** A chart and the file name (without extension) it is saved under. */
    public record Named(Chart<?, ?> chart, String name) {
    }

    /**
     * Writes every figure the analysis has data for into outDir, as name.png and name.svg; training_curves only when
     * metricsJsonl exists. Returns the files written, in {@link #charts}'s order.
     */
    public static List<Path> writeAll(JsonNode analysis, Path metricsJsonl, Path outDir) {
        return saveAlongside(charts(analysis, metricsJsonl), outDir, List.of());
    }

    /**
     * Saves the charts into figureDir (created if needed) and runs the other writers, side by side on every core:
     * the files are independent, and drawing, encoding and writing them is most of a command's last seconds. The
     * others go first (the callers' JSON is the largest single file). Returns the figure files in the charts' order.
     */
    public static List<Path> saveAlongside(List<Named> charts, Path figureDir, List<Runnable> others) {
        createFolder(figureDir);
        Path[][] files = new Path[charts.size()][];
        int k = others.size();
        Parallel.forEachItem(k + charts.size(), (worker, i) -> {
            if (i < k) {
                others.get(i).run();
            } else {
                files[i - k] = save(charts.get(i - k), figureDir);
            }
        });
        List<Path> written = new ArrayList<>();
        for (Path[] f : files) {
            written.addAll(List.of(f));
        }
        return written;
    }

    /** Saves name.png and name.svg in dir (see {@link #save(Chart, Path, String)}). */
    public static Path[] save(Named named, Path dir) {
        return save(named.chart(), dir, named.name()).toArray(Path[]::new);
    }

    public static void createFolder(Path outDir) {
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw new TrilensException("cannot create the figures folder " + outDir + ": " + e.getMessage(), e);
        }
    }

    /**
     * The figures the analysis has data for, built but not drawn: drawing and encoding them (most of the time) can
     * then run on every core.
     */
    public static List<Named> charts(JsonNode analysis, Path metricsJsonl) {
        System.setProperty("java.awt.headless", "true");
        List<Named> charts = new ArrayList<>();
        JsonNode probs = analysis.at("/predictions/correct_probs");
        if (isMatrix(probs)) {
            charts.add(new Named(sampleProbs(probs), "sample_probs"));
        }
        JsonNode head = analysis.at("/attention/heads/0");
        JsonNode patterns = head.path("patterns");
        for (int n = 0; n < Math.min(2, patterns.size()) && isMatrix(patterns.get(n)); n++) {
            charts.add(new Named(heatmap("Attention pattern, sequence " + n + " (" + head.path("name").asText() + ")",
                    "key position", "query position", patterns.get(n), Scale.sequential(0, 1), true),
                    "attn_pattern_seq" + n));
        }
        JsonNode prev = head.path("mean_prev_attention_by_position");
        if (prev.isArray() && prev.size() > 0) {
            charts.add(new Named(prevTokenAttention(prev, analysis.at("/attention/threshold").asDouble(0.2)),
                    "prev_token_attention"));
        }
        JsonNode qk = analysis.at("/circuits/qk_circuit/heads/0");
        JsonNode tt = qk.at("/decomposition/token_token"), pp = qk.at("/decomposition/pos_pos");
        if (isMatrix(tt)) {
            charts.add(new Named(heatmap("QK scores, token x token", "key token", "query token", tt,
                    Scale.symmetric(tt), false), "qk_token_token"));
        }
        if (isMatrix(pp)) {
            charts.add(new Named(heatmap("QK scores, position x position", "key position", "query position", pp,
                    Scale.symmetric(pp), true), "qk_pos_pos"));
        }
        if (isMatrix(qk.path("prefix_advantage"))) {
            charts.add(new Named(prefixScores(qk.path("prefix_advantage"), analysis), "prefix_scores"));
        }
        JsonNode cos = analysis.at("/circuits/qk_circuit/positional_cosine");
        if (isMatrix(cos)) {
            charts.add(new Named(heatmap("Cosine similarity of W_pos rows", "position", "position", cos,
                    Scale.diverging(1), false), "wpos_similarity"));
        }
        JsonNode ov = analysis.at("/circuits/ov_circuit/heads/0");
        if (!ov.isMissingNode()) {
            charts.add(new Named(ovSpectra(ov), "ov_svd"));
        }
        JsonNode components = analysis.at("/attribution/components");
        if (components.isArray() && components.size() > 0) {
            charts.add(new Named(dla(components), "dla"));
        }
        if (metricsJsonl != null && Files.isRegularFile(metricsJsonl)) {
            charts.add(new Named(trainingCurves(metricsJsonl), "training_curves"));
        }
        return charts;
    }

    /** A non-empty array of non-empty rows: something a heatmap can draw. */
    private static boolean isMatrix(JsonNode m) {
        return m.isArray() && m.size() > 0 && m.get(0).isArray() && m.get(0).size() > 0;
    }

    private static HeatMapChart sampleProbs(JsonNode probs) {
        int S = Math.min(SAMPLE_SEQUENCES, probs.size());
        ArrayNode rows = new ObjectMapper().createArrayNode();
        for (int s = 0; s < S; s++) {
            rows.add(probs.get(s));
        }
        return heatmap("Probability of the correct next token, first " + S + " sequences",
                "position (predicting the next token)", "sequence", rows, Scale.sequential(0, 1), false);
    }

    private static XYChart prevTokenAttention(JsonNode prev, double threshold) {
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT)
                .title("Mean attention to the previous token, by query position").xAxisTitle("query position")
                .yAxisTitle("mean attention to position - 1").build();
        style(chart);
        double[] x = new double[prev.size()], y = new double[prev.size()], t = new double[prev.size()];
        for (int i = 0; i < x.length; i++) {
            x[i] = i;
            y[i] = prev.get(i).asDouble();
            t[i] = threshold;
        }
        chart.addSeries("mean attention", x, y).setMarker(SeriesMarkers.CIRCLE);
        chart.addSeries("threshold " + threshold, x, t).setMarker(SeriesMarkers.NONE);
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0);
        return chart;
    }

    /**
     * The prefix score advantage through a sigmoid: the share of attention the previous token X would get if it and
     * the current token Y were the only keys. Prefixes the head has learned come out near 1 and the rest near 0,
     * which the raw advantage (a wide range dominated by large negative scores) hides; rings mark the prefixes.
     */
    private static HeatMapChart prefixScores(JsonNode adv, JsonNode analysis) {
        ArrayNode share = new ObjectMapper().createArrayNode();
        for (JsonNode row : adv) {
            ArrayNode r = share.addArray();
            row.forEach(v -> r.add(1 / (1 + Math.exp(-v.asDouble()))));
        }
        Prefixes prefixes = prefixes(analysis);
        HeatMap chart = heatmap("Prefix scores \u03c3(advantage), " + prefixes.what + " ringed",
                "Y (current token)", "X (previous token)", share, Scale.sequential(0, 1), false);
        chart.ringed = prefixes.pairs;
        return chart;
    }

    /** The (a, b) pairs to ring: the dataset's prefixes, or those read from the weights when it is unknown. */
    record Prefixes(String what, List<int[]> pairs) {
    }

    static Prefixes prefixes(JsonNode analysis) {
        List<int[]> pairs = new ArrayList<>();
        TrigramDataset data = dataset(analysis);
        if (data != null) {
            for (int[] t : data.trigrams()) {
                pairs.add(new int[] {t[0], t[1]});
            }
            return new Prefixes("the dataset's " + pairs.size() + " prefixes", pairs);
        }
        for (JsonNode t : analysis.at("/extraction/table/trigrams")) {
            pairs.add(new int[] {t.path("a").asInt(), t.path("b").asInt()});
        }
        return new Prefixes("the " + pairs.size() + " prefixes read from the weights", pairs);
    }

    private static CategoryChart ovSpectra(JsonNode ov) {
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT)
                .title("OV circuit singular values (" + ov.path("name").asText() + ")").xAxisTitle("index")
                .yAxisTitle("singular value").build();
        style(chart);
        addSpectrum(chart, "W_V W_O", ov.path("ov_singular_values"));
        addSpectrum(chart, "W_E W_V W_O W_U / 10", scaled(ov.path("full_ov_singular_values"), 0.1));
        return chart;
    }

    private static void addSpectrum(CategoryChart chart, String name, JsonNode values) {
        int n = Math.min(16, values.size());
        List<Integer> x = new ArrayList<>();
        List<Double> y = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            x.add(i);
            y.add(values.get(i).asDouble());
        }
        if (n > 0) {
            chart.addSeries(name, x, y);
        }
    }

    private static JsonNode scaled(JsonNode values, double factor) {
        ArrayNode out = new ObjectMapper().createArrayNode();
        values.forEach(v -> out.add(v.asDouble() * factor));
        return out;
    }

    private static CategoryChart dla(JsonNode components) {
        CategoryChart chart = new CategoryChartBuilder().width(WIDTH).height(HEIGHT)
                .title("Direct logit attribution of the correct next token").xAxisTitle("component")
                .yAxisTitle("mean logit minus mean over vocabulary").build();
        style(chart);
        List<String> names = new ArrayList<>();
        List<Double> tri = new ArrayList<>(), other = new ArrayList<>();
        for (JsonNode c : components) {
            names.add(c.path("name").asText());
            tri.add(c.path("mean_trigram").asDouble(0));
            other.add(c.path("mean_other").asDouble(0));
        }
        chart.addSeries("trigram positions", names, tri);
        chart.addSeries("other positions", names, other);
        chart.getStyler().setXAxisLabelRotation(30);
        return chart;
    }

    /** Losses on the left axis, the trigram metrics (fractions and probabilities, 0..1) on the right. */
    private static XYChart trainingCurves(Path metricsJsonl) {
        ObjectMapper json = new ObjectMapper();
        String[] losses = {"train_loss", "val_loss"}, fractions = {"trigram_frac_correct", "trigram_avg_correct_prob"};
        List<Double> epoch = new ArrayList<>();
        List<List<Double>> series = new ArrayList<>();
        for (int i = 0; i < losses.length + fractions.length; i++) {
            series.add(new ArrayList<>());
        }
        try {
            for (String line : Files.readAllLines(metricsJsonl, StandardCharsets.UTF_8)) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode n = json.readTree(line);
                epoch.add(n.path("epoch").asDouble());
                for (int i = 0; i < series.size(); i++) {
                    String key = i < losses.length ? losses[i] : fractions[i - losses.length];
                    series.get(i).add(n.path(key).isNumber() ? n.path(key).asDouble() : Double.NaN);
                }
            }
        } catch (IOException e) {
            throw new TrilensException("cannot read " + metricsJsonl + ": " + e.getMessage()
                    + "; expected metrics.jsonl as trilens train writes it", e);
        }
        XYChart chart = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Training").xAxisTitle("epoch")
                .yAxisTitle("loss (nats)").build();
        style(chart);
        chart.setYAxisGroupTitle(1, "trigram metrics (0 to 1)");
        chart.getStyler().setYAxisGroupPosition(1, Styler.YAxisPosition.Right);
        chart.getStyler().setYAxisMin(1, 0.0).setYAxisMax(1, 1.0);
        Color[] colors = {new Color(0xb2182b), new Color(0xef8a62), new Color(0x2166ac), new Color(0x1a9850)};
        if (epoch.size() > 20) {
            // XChart labels every epoch of a short run, side by side; upright they would run into each other
            chart.getStyler().setXAxisLabelRotation(90);
        }
        if (!epoch.isEmpty()) {
            for (int i = 0; i < series.size(); i++) {
                boolean loss = i < losses.length;
                XYSeries xy = chart.addSeries(loss ? losses[i] : fractions[i - losses.length], epoch, series.get(i));
                xy.setMarker(epoch.size() == 1 ? SeriesMarkers.CIRCLE : SeriesMarkers.NONE);
                xy.setLineColor(colors[i]);
                xy.setMarkerColor(colors[i]);
                xy.setLineWidth(2.5f);
                xy.setYAxisGroup(loss ? 0 : 1);
            }
        }
        return chart;
    }

    /**
     * A colour scale: its colours from low to high, and the values they stand for. XChart labels the colour bar with
     * the bare doubles, so a scale fitted to the data has its ends rounded outward to two significant digits.
     */
    record Scale(Color[] colors, double min, double max) {
        static Scale sequential(double min, double max) {
            return new Scale(SEQUENTIAL, min, max);
        }

        static Scale diverging(double max) {
            return new Scale(DIVERGING, -max, max);
        }

        /** Diverging around 0, symmetric about the largest finite magnitude. */
        static Scale symmetric(JsonNode matrix) {
            double max = 0;
            for (JsonNode row : matrix) {
                for (JsonNode v : row) {
                    if (Double.isFinite(v.asDouble())) {
                        max = Math.max(max, Math.abs(v.asDouble()));
                    }
                }
            }
            return diverging(roundUp(max));
        }
    }

    /** The smallest number of two significant digits that is at least x (x > 0), as a short decimal; 1 for 0. */
    static double roundUp(double x) {
        if (!(x > 0) || !Double.isFinite(x)) {
            return 1;
        }
        return new BigDecimal(x).round(new MathContext(2, RoundingMode.CEILING)).stripTrailingZeros().doubleValue();
    }

    /**
     * matrix[row][col] with col along x and row 0 at the top, as CircuitsVis and plotly draw a pattern. With causal,
     * the cells whose key (col) comes after the query (row) are left out, so they show the grey of a masked cell.
     */
    static HeatMap heatmap(String title, String x, String y, JsonNode matrix, Scale scale, boolean causal) {
        int rows = matrix.size(), cols = matrix.get(0).size();
        HeatMap chart = new HeatMap(rows, cols, causal);
        chart.setTitle(causal ? title + " (grey: masked)" : title);
        chart.setXAxisTitle(x);
        chart.setYAxisTitle(y);
        style(chart);
        HeatMapStyler st = chart.getStyler();
        st.setRangeColors(scale.colors());
        st.setShowValue(false);
        st.setPlotContentSize(1.0);
        st.setLegendVisible(true);
        st.setAxisTicksVisible(true);
        st.setPlotGridLinesVisible(false);
        st.setDrawBorder(false);
        List<Number[]> cells = new ArrayList<>();
        for (int r = 0; r < rows; r++) {
            JsonNode row = matrix.get(r);
            for (int c = 0; c < row.size(); c++) {
                double v = row.get(c).asDouble();
                if (causal && c > r) {
                    continue;
                }
                // a clamp, so a NaN or infinite entry draws at the end of the scale rather than breaking it
                double shown = Double.isNaN(v) ? scale.min() : Math.max(scale.min(), Math.min(scale.max(), v));
                cells.add(new Number[] {c, rows - 1 - r, shown});
            }
        }
        // XChart gets one cell (it refuses none): HeatMap.paint fills them all, and a vector export of XChart's
        // fractional, anti-aliased cells as well takes seconds per figure
        chart.cells = cells;
        HeatMapSeries series = chart.addSeries(title, ticks(cols, false), ticks(rows, true), cells.subList(0, 1));
        series.setMin(scale.min());
        series.setMax(scale.max());
        return chart;
    }

    /**
     * Category labels for n rows or columns: every 5th (10th past 60) index, blanks between so the labels stay
     * readable; reversed for rows, which XChart draws from the bottom. Blanks are distinct strings because XChart
     * keys its categories by label.
     */
    static List<String> ticks(int n, boolean reversed) {
        int step = n <= 20 ? 1 : n <= 60 ? 5 : 10;
        List<String> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int index = reversed ? n - 1 - i : i;
            out.add(index % step == 0 ? String.valueOf(index) : " ".repeat(i + 1));
        }
        return out;
    }

    /** A heatmap that greys its masked cells and can ring cells, drawn in paint so the PNG and the SVG both have them. */
    static final class HeatMap extends HeatMapChart {
        final int rows, cols;
        final boolean causal;
        /** {col, y index (row rows - 1 - y), value} of every cell to fill. */
        List<Number[]> cells = List.of();
        /** [row, col] of the cells to ring. */
        List<int[]> ringed = List.of();

        HeatMap(int rows, int cols, boolean causal) {
            super(new HeatMapChartBuilder().width(WIDTH).height(HEIGHT));
            this.rows = rows;
            this.cols = cols;
            this.causal = causal;
        }

        /** Where the cells were drawn by the last paint. */
        Rectangle2D plotBounds() {
            return plot.getBounds();
        }

        @Override
        public void paint(Graphics2D g, int width, int height) {
            super.paint(g, width, height);
            Rectangle2D b = plot.getBounds();
            double w = b.getWidth() / cols, h = b.getHeight() / rows, d = Math.max(3, Math.min(w, h) - 1);
            // XChart fills each cell at fractional coordinates with anti-aliasing, which leaves light seams between
            // cells; they are filled again here on whole pixels, with XChart's own gradient so the colour bar holds
            // VectorGraphics2D turns every fill after a gradient paint (XChart's colour bar) into an embedded bitmap
            // until some graphics is disposed; disposing a copy makes the cells below SVG rectangles again
            g.create().dispose();
            Object aa = g.getRenderingHint(RenderingHints.KEY_ANTIALIASING);
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_OFF);
            HeatMapSeries series = getHeatMapSeries();
            Color[] colors = getStyler().getRangeColors();
            for (Number[] cell : cells) {
                int c = cell[0].intValue(), r = rows - 1 - cell[1].intValue();
                g.setPaint(gradient(colors, series.getMin(), series.getMax(), cell[2].doubleValue()));
                fillCells(g, b, w, h, c, r, c + 1, r + 1);
            }
            if (causal) {
                // in row r, the keys c > r
                g.setPaint(MASKED);
                for (int r = 0; r < rows && r + 1 < cols; r++) {
                    fillCells(g, b, w, h, r + 1, r, cols, r + 1);
                }
            }
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setStroke(new BasicStroke(1.6f));
            g.setPaint(RING);
            for (int[] rc : ringed) {
                double cx = b.getX() + (rc[1] + 0.5) * w, cy = b.getY() + (rc[0] + 0.5) * h;
                g.draw(new Ellipse2D.Double(cx - d / 2, cy - d / 2, d, d));
            }
            if (aa != null) {
                g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, aa);
            }
        }

        /** Columns c0..c1-1 of rows r0..r1-1, edges rounded to whole pixels so neighbours meet exactly. */
        private static void fillCells(Graphics2D g, Rectangle2D b, double w, double h, int c0, int r0, int c1, int r1) {
            int x0 = (int) Math.round(b.getX() + c0 * w), x1 = (int) Math.round(b.getX() + c1 * w);
            int y0 = (int) Math.round(b.getY() + r0 * h), y1 = (int) Math.round(b.getY() + r1 * h);
            g.fillRect(x0, y0, x1 - x0, y1 - y0);
        }

        /** XChart's gradient (PlotContent_HeatMap): linear between neighbouring range colours, ends clamped. */
        static Color gradient(Color[] colors, double min, double max, double v) {
            double t = v <= min ? 0 : v >= max ? 1 : (v - min) / (max - min);
            double x = t * (colors.length - 1);
            int i = (int) x;
            if (i >= colors.length - 1) {
                return colors[colors.length - 1];
            }
            Color a = colors[i], z = colors[i + 1];
            double f = x - i;
            return new Color((int) (a.getRed() + f * (z.getRed() - a.getRed())),
                    (int) (a.getGreen() + f * (z.getGreen() - a.getGreen())),
                    (int) (a.getBlue() + f * (z.getBlue() - a.getBlue())));
        }
    }

    /** Fonts large enough to read when the 900 px figure is shown 480 px wide. */
    public static void style(Chart<?, ?> chart) {
        Styler st = chart.getStyler();
        st.setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 22));
        st.setLegendFont(new Font(Font.SANS_SERIF, Font.PLAIN, 17));
        st.setChartBackgroundColor(Color.WHITE);
        if (st instanceof AxesChartStyler axes) {
            axes.setAxisTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 19));
            axes.setAxisTickLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 17));
        }
        if (!(chart instanceof HeatMapChart)) {
            // below the plot, so the plot keeps the figure's full width
            st.setLegendPosition(Styler.LegendPosition.OutsideS);
            st.setLegendLayout(Styler.LegendLayout.Horizontal);
        }
    }

    private static TrigramDataset dataset(JsonNode analysis) {
        JsonNode d = analysis.path("dataset");
        if (!d.path("trigram_prob").isNumber()) {
            return null;
        }
        return TrigramDataset.generate(d.path("d_vocab").asInt(), d.path("seq_len").asInt(),
                d.path("trigram_prob").asDouble(), d.path("seed").asLong(), 1);
    }

    /**
     * Writes name.png and name.svg (XChart's vector export of the same chart), each whole or not at all; returns
     * both paths.
     */
    public static List<Path> save(Chart<?, ?> chart, Path dir, String name) {
        Path png = dir.resolve(name + ".png"), svg = dir.resolve(name + ".svg");
        AtomicFiles.write(png, out -> BitmapEncoder.saveBitmap(chart, out, BitmapEncoder.BitmapFormat.PNG));
        AtomicFiles.write(svg, out -> VectorGraphicsEncoder.saveVectorGraphic(chart, out,
                VectorGraphicsEncoder.VectorGraphicsFormat.SVG));
        return List.of(png, svg);
    }
}
