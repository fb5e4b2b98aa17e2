package dev.trilens.report;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Analysis;
import dev.trilens.interp.AnalysisContext;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.logging.Level;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.interactions.Actions;
import org.openqa.selenium.logging.LogEntry;
import org.openqa.selenium.logging.LogType;

class ReportPageTest {
    static final List<String> SECTIONS = List.of("explanation", "worklog", "model", "training", "dynamics", "metrics",
            "sample-probs", "attention-explorer",
            "prev-token", "qk", "ov", "dla", "ablation", "patching", "trigram-table", "causal", "failures");
    private static JsonNode analysis;
    /** dynamics.json of a tiny run that kept a snapshot every 5 epochs. */
    private static JsonNode dynamics;

    @TempDir
    Path tmp;

    /** A small model trained in seconds, so the extracted-trigram table has rows to filter. */
    @BeforeAll
    static void analyze() {
        var tiny = dev.trilens.interp.TrigramExtractorTestModels.tiny();
        ModelConfig cfg = tiny.config().modelConfig();
        TrigramDataset data = TrigramDataset.generate(cfg.dVocab(), cfg.nCtx(), tiny.config().trigramProb(),
                tiny.config().dataSeed(), 60);
        Analysis a = Analysis.run(new AnalysisContext(new HookedTransformer(tiny.weights()), data), s -> { });
        analysis = Analysis.mapper().valueToTree(a.toJson("tiny.safetensors", cfg, data));
        try {
            Path run = Files.createTempDirectory("trilens-report-dynamics");
            run.toFile().deleteOnExit();
            dev.trilens.train.Trainer.start(dev.trilens.interp.TrigramExtractorTestModels.TINY, run).snapshotEvery(5)
                    .run(new dev.trilens.train.Trainer.Listener() {
                    });
            dynamics = Analysis.mapper().valueToTree(dev.trilens.interp.TrainingDynamics.compute(
                    dev.trilens.train.RunSnapshots.read(run), 60, (e, n, total) -> { }));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void oneSelfContainedFileWithEverySection() throws Exception {
        Path html = tmp.resolve("report.html");
        ReportPage.write(analysis, null, html);
        String page = Files.readString(html);
        for (String id : SECTIONS) {
            assertThat(page).contains("id=\"" + id + "\"");
        }
        assertThat(page).doesNotContain("src=\"http").doesNotContain("href=\"http").doesNotContain("<link");
        String json = page.substring(page.indexOf("id=\"data\">") + 10, page.indexOf("</script>"));
        JsonNode data = new ObjectMapper().readTree(json); // strict: no NaN tokens
        assertThat(data.path("sequences").size()).isPositive();
        assertThat(data.path("trigrams").size()).isPositive();
        assertThat(data.path("dynamics").isNull()).as("no dynamics.json, no section data").isTrue();
        ReportPage.write(analysis, null, dynamics, html);
        String withDynamics = Files.readString(html);
        JsonNode dyn = new ObjectMapper().readTree(withDynamics.substring(withDynamics.indexOf("id=\"data\">") + 10,
                withDynamics.indexOf("</script>"))).path("dynamics"); // strict too: epoch 0's train_loss is "NaN"
        assertThat(dyn.path("snapshots")).hasSize(dynamics.path("snapshots").size()).hasSizeGreaterThan(2);
        assertThat(dyn.at("/snapshots/0/train_loss").asText()).isEqualTo("NaN");
        assertThat(dyn.at("/snapshots/0").has("extracted")).as("the page does not need the extracted lists").isFalse();
        assertThat(dyn.path("summary")).isEqualTo(dynamics.path("summary"));
        // the explorer's top-3 predictions for every embedded token, and the failure modes without their examples
        assertThat(data.at("/top/tokens").size()).isEqualTo(data.path("sequences").size());
        assertThat(data.at("/top/probs/0/0").size()).isEqualTo(3);
        assertThat(data.at("/top/tokens/0").size()).isEqualTo(data.at("/sequences/0").size());
        assertThat(data.at("/failures/catalogue/n_trigrams").asInt()).isPositive();
        assertThat(data.at("/failures/families").size()).isPositive();
        assertThat(data.at("/failures/families/0").has("examples")).isFalse();
    }

    @Test
    @SuppressWarnings("unchecked")
    void worksInARealBrowser() throws Exception {
        Path html = tmp.resolve("report.html");
        Path metrics = tmp.resolve("metrics.jsonl");
        Files.writeString(metrics, "{\"epoch\":1,\"train_loss\":2.5,\"train_loss_as_frac\":0.9,\"val_loss\":2.6,"
                + "\"trigram_frac_correct\":0.2}\n{\"epoch\":2,\"train_loss\":2.4,\"train_loss_as_frac\":0.7,"
                + "\"val_loss\":2.5,\"trigram_frac_correct\":0.6}\n");
        ReportPage.write(analysis, metrics, dynamics, html);

        WebDriver driver = dev.trilens.Chromium.start(tmp.resolve("profile"), 1280, 1600);
        try {
            driver.get(html.toUri().toString());
            for (String id : SECTIONS) {
                assertThat(driver.findElement(By.id(id)).isDisplayed()).as(id).isTrue();
            }
            List<WebElement> tokens = driver.findElements(By.cssSelector("#tokens .tok"));
            assertThat(tokens).hasSizeGreaterThan(3);
            new Actions(driver).moveToElement(tokens.get(3)).perform();
            String atThird = attentions(tokens);
            new Actions(driver).moveToElement(tokens.get(tokens.size() - 1)).perform();
            String atLast = attentions(tokens);
            assertThat(atLast).as("hovering another token changes the highlighted attention").isNotEqualTo(atThird);
            tokens.get(2).click();
            assertThat(tokens.get(2).getAttribute("class")).contains("sel");

            // row 0 of the pattern at the top: query 0 sees only key 0 (attention 1, the darkest colour), the rest
            // of its row is masked grey
            List<Object> corner = (List<Object>) js(driver, "const c = document.querySelector('#pattern-fig canvas'), "
                    + "r = devicePixelRatio, g = c.getContext('2d'), L = +c.dataset.left, T = +c.dataset.top, "
                    + "s = +c.dataset.cell, px = (x, y) => Array.from(g.getImageData(Math.floor(x * r), "
                    + "Math.floor(y * r), 1, 1).data).slice(0, 3).join(','); "
                    + "return [px(L + s / 2, T + s / 2), px(L + 1.5 * s, T + s / 2)];");
            assertThat(corner).containsExactly("127,0,0", "189,189,189");

            // the explorer marks b, the token before a trigram's completion, and tells its top-3 predictions
            Number s = (Number) js(driver, "return D.completes.findIndex(r => r.some(x => x));");
            assertThat(s.intValue()).as("an embedded sequence with a trigram").isNotNegative();
            new org.openqa.selenium.support.ui.Select(driver.findElement(By.id("seq-select")))
                    .selectByValue(String.valueOf(s.intValue()));
            List<Object> expected = (List<Object>) js(driver, "const c = D.completes[" + s + "]; "
                    + "return c.map((x, j) => j).filter(j => c[j + 1]);");
            tokens = driver.findElements(By.cssSelector("#tokens .tok"));
            List<Object> marked = new java.util.ArrayList<>();
            for (int j = 0; j < tokens.size(); j++) {
                if (tokens.get(j).getAttribute("class").contains("trigram")) {
                    marked.add((long) j);
                }
            }
            assertThat(marked).isNotEmpty().isEqualTo(expected);
            WebElement b = tokens.get(((Long) marked.get(0)).intValue());
            new Actions(driver).moveToElement(b).perform();
            WebElement tip = driver.findElement(By.id("tooltip"));
            assertThat(tip.isDisplayed()).isTrue();
            assertThat(tip.getText()).startsWith("token " + b.getText() + " at position " + marked.get(0));
            assertThat(tip.getText().split("p=0\\.|p=1\\.")).as(tip.getText()).hasSize(4);

            // the explanation first: every claim as analysis.json has it, with its evidence numbers and a working link
            List<WebElement> claims = driver.findElements(By.cssSelector("#explanation-body li.claim"));
            JsonNode explanation = analysis.path("explanation");
            assertThat(claims).hasSize(explanation.size()).isNotEmpty();
            int numbersChecked = 0;
            for (int i = 0; i < claims.size(); i++) {
                JsonNode c = explanation.get(i);
                WebElement li = claims.get(i);
                assertThat(li.findElement(By.className("claim-text")).getText()).isEqualTo(c.path("text").asText());
                WebElement link = li.findElement(By.tagName("a"));
                assertThat(link.getAttribute("href")).endsWith("#" + c.path("section").asText());
                assertThat(driver.findElements(By.id(c.path("section").asText()))).hasSize(1);
                li.findElement(By.cssSelector("details.evidence summary")).click();
                String shown = li.findElement(By.cssSelector("details.evidence code")).getText();
                var fields = c.path("evidence").fields();
                assertThat(fields.hasNext()).isTrue();
                while (fields.hasNext()) {
                    var f = fields.next();
                    if (f.getValue().isNumber()) {
                        assertThat(shown).contains(f.getKey() + " = " + shownNumber(f.getValue()));
                        numbersChecked++;
                    }
                }
            }
            assertThat(numbersChecked).as("numeric evidence compared").isPositive();
            assertThat(driver.findElements(By.cssSelector("#worklog-body .answer")))
                    .hasSize(analysis.path("worklog").size()).hasSize(5);
            assertThat(driver.findElement(By.cssSelector("#answer-set_test .verdict")).getText())
                    .isEqualTo(analysis.at("/worklog/2/verdict").asText());

            // failure modes filled from the catalogue; causal variants described; the metrics fit at 1280 px
            String failures = driver.findElement(By.id("failures-body")).getText();
            assertThat(failures).contains(analysis.at("/failure_modes/catalogue/n_missed").asInt() + " of "
                    + analysis.at("/failure_modes/catalogue/n_trigrams").asInt() + " trigrams missed");
            assertThat(driver.findElements(By.cssSelector("#failure-causes tbody tr")))
                    .hasSize(analysis.at("/failure_modes/catalogue/counts").size());
            assertThat(driver.findElements(By.cssSelector("#failure-families tbody tr")))
                    .hasSize(analysis.at("/failure_modes/families").size()).isNotEmpty();
            List<WebElement> causal = driver.findElements(By.cssSelector("#causal-table tbody tr"));
            assertThat(causal).hasSize(analysis.at("/causal_validation/variants").size()).isNotEmpty();
            for (int i = 0; i < causal.size(); i++) {
                assertThat(causal.get(i).findElements(By.tagName("td")).get(1).getText())
                        .isEqualTo(analysis.at("/causal_validation/variants/" + i + "/description").asText())
                        .isNotBlank();
            }
            assertThat((Boolean) js(driver, "const m = document.getElementById('metrics'); "
                    + "return m.scrollWidth <= m.clientWidth;")).as("metrics fit at 1280 px").isTrue();

            // training dynamics: the words as dynamics.json has them, five charts, the trigrams in learning order
            List<WebElement> words = driver.findElements(By.cssSelector("#dynamics-summary li"));
            assertThat(words).hasSize(dynamics.path("summary").size()).isNotEmpty();
            for (int i = 0; i < words.size(); i++) {
                assertThat(words.get(i).getText()).isEqualTo(dynamics.path("summary").get(i).asText());
            }
            assertThat(driver.findElements(By.cssSelector("#dynamics-body canvas"))).hasSize(5);
            driver.findElement(By.cssSelector("#dynamics-body details summary")).click();
            assertThat(driver.findElements(By.cssSelector("#dynamics-trigrams tbody tr")))
                    .hasSize(dynamics.path("n_trigrams").asInt());
            assertThat(driver.findElements(By.cssSelector("#dynamics-phases tbody tr")))
                    .hasSize(dynamics.path("phase_changes").size());

            int before = driver.findElements(By.cssSelector("#trigrams tbody tr")).size();
            assertThat(before).isPositive();
            String a = driver.findElement(By.cssSelector("#trigrams tbody tr td")).getText();
            driver.findElement(By.id("trigram-filter")).sendKeys("zzz-no-such-row");
            assertThat(driver.findElements(By.cssSelector("#trigrams tbody tr"))).isEmpty();
            driver.findElement(By.id("trigram-filter")).clear();
            driver.findElement(By.id("trigram-filter")).sendKeys(a);
            int after = driver.findElements(By.cssSelector("#trigrams tbody tr")).size();
            assertThat(after).isPositive().isLessThanOrEqualTo(before);

            for (LogEntry e : driver.manage().logs().get(LogType.BROWSER)) {
                assertThat(e.getLevel()).as("browser console: " + e.getMessage()).isNotEqualTo(Level.SEVERE);
            }
            screenshot(driver, "report-1280.png");
            driver.manage().window().setSize(new org.openqa.selenium.Dimension(480, 1600));
            assertThat((Boolean) js(driver, "return document.documentElement.scrollWidth <= window.innerWidth;"))
                    .as("no sideways scrolling of the page at 480 px").isTrue();
            screenshot(driver, "report-480.png");
        } finally {
            driver.quit();
        }
    }

    /** A number as the page's fmt() shows it: integers as they are, others to 4 decimals. */
    private static String shownNumber(JsonNode v) {
        double d = v.asDouble();
        return d == Math.rint(d) && Math.abs(d) < 1e15 ? String.valueOf((long) d)
                : String.format(java.util.Locale.ROOT, "%.4f", d);
    }

    private static Object js(WebDriver driver, String script) {
        return ((org.openqa.selenium.JavascriptExecutor) driver).executeScript(script);
    }

    /** A screenshot for a person to look at, checked to be a real image. */
    private static void screenshot(WebDriver driver, String name) throws Exception {
        js(driver, "window.scrollTo(0, 0);");
        byte[] png = ((ChromeDriver) driver).getScreenshotAs(OutputType.BYTES);
        java.awt.image.BufferedImage img = javax.imageio.ImageIO.read(new java.io.ByteArrayInputStream(png));
        assertThat(img).as(name).isNotNull();
        assertThat(img.getWidth()).as(name).isPositive();
        Path shot = Path.of(System.getProperty("trilens.buildDir", "target"), name);
        Files.createDirectories(shot.getParent());
        Files.write(shot, png);
    }

    private static String attentions(List<WebElement> tokens) {
        StringBuilder sb = new StringBuilder();
        for (WebElement t : tokens) {
            sb.append(t.getAttribute("data-attention")).append(',');
        }
        return sb.toString();
    }
}
