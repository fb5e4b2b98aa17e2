package dev.trilens.report;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Analysis;
import dev.trilens.interp.AnalysisContext;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
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
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.interactions.Actions;
import org.openqa.selenium.logging.LogEntry;
import org.openqa.selenium.logging.LogType;
import org.openqa.selenium.logging.LoggingPreferences;

class ReportPageTest {
    static final List<String> SECTIONS = List.of("model", "training", "metrics", "sample-probs", "attention-explorer",
            "prev-token", "qk", "ov", "dla", "ablation", "patching", "trigram-table", "causal", "failures");
    private static JsonNode analysis;

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
    }

    @Test
    void worksInARealBrowser() throws Exception {
        File chromium = new File("/usr/bin/chromium"), driverBin = new File("/usr/bin/chromedriver");
        boolean present = chromium.canExecute() && driverBin.canExecute();
        if (!"true".equals(System.getenv("CI"))) {
            assumeTrue(present, "skipped: Debian's chromium and chromium-driver are not installed "
                    + "(apt-get install -y chromium chromium-driver); .ci/run installs them");
        }
        assertThat(present).as("CI must have /usr/bin/chromium and /usr/bin/chromedriver").isTrue();
        Path html = tmp.resolve("report.html");
        Path metrics = tmp.resolve("metrics.jsonl");
        Files.writeString(metrics, "{\"epoch\":1,\"train_loss\":2.5,\"train_loss_as_frac\":0.9,\"val_loss\":2.6,"
                + "\"trigram_frac_correct\":0.2}\n{\"epoch\":2,\"train_loss\":2.4,\"train_loss_as_frac\":0.7,"
                + "\"val_loss\":2.5,\"trigram_frac_correct\":0.6}\n");
        ReportPage.write(analysis, metrics, html);

        ChromeOptions options = new ChromeOptions();
        options.setBinary(chromium);
        options.addArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1600", "--user-data-dir=" + tmp.resolve("profile"));
        LoggingPreferences logs = new LoggingPreferences();
        logs.enable(LogType.BROWSER, Level.ALL);
        options.setCapability("goog:loggingPrefs", logs);
        ChromeDriverService service = new ChromeDriverService.Builder().usingDriverExecutable(driverBin).build();
        WebDriver driver = new ChromeDriver(service, options);
        try {
            driver.manage().timeouts().pageLoadTimeout(Duration.ofSeconds(60));
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
            byte[] png = ((ChromeDriver) driver).getScreenshotAs(OutputType.BYTES);
            Path shot = Path.of(System.getProperty("trilens.buildDir", "target"), "report-screenshot.png");
            Files.createDirectories(shot.getParent());
            Files.write(shot, png);
        } finally {
            driver.quit();
        }
    }

    private static String attentions(List<WebElement> tokens) {
        StringBuilder sb = new StringBuilder();
        for (WebElement t : tokens) {
            sb.append(t.getAttribute("data-attention")).append(',');
        }
        return sb.toString();
    }
}
