package dev.trilens.serve;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Probe;
import dev.trilens.interp.TrigramExtractor;
import dev.trilens.interp.TrigramExtractorTestModels;
import dev.trilens.model.HookedTransformer;
import dev.trilens.model.Weights;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.Dimension;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.StaleElementReferenceException;
import org.openqa.selenium.WebDriver;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.interactions.Actions;
import org.openqa.selenium.logging.LogEntry;
import org.openqa.selenium.logging.LogType;
import org.openqa.selenium.support.ui.WebDriverWait;

/** The serve page in Debian's chromium, on the challenge model beside a randomly initialised one. */
class ProbePageTest {

    @TempDir
    Path tmp;

    @Test
    void probesTheChallengeModelInARealBrowser() throws Exception {
        Weights w = TrigramExtractorTestModels.challenge();
        TrigramDataset data = TrigramExtractorTestModels.challengeData(2500);
        TrigramExtractor.Result rules = TrigramExtractorTestModels.challengeExtraction();
        Probe a = new Probe(new HookedTransformer(w), rules, data);
        Probe b = Probe.of(Weights.init(w.cfg, 7), data);
        TrigramExtractor.Entry learned = rules.trigrams().get(0);

        try (ProbeServer server = new ProbeServer(new ProbeServer.Model(a, "trigram_model.pt"),
                new ProbeServer.Model(b, "random-init.safetensors")).start("127.0.0.1", 0)) {
            WebDriver driver = dev.trilens.Chromium.start(tmp.resolve("profile"), 1280, 1000);
            try {
                // the page re-renders the token strip after each reply: an element read mid-render is stale, and the
                // wait reads it again rather than failing (seen on a loaded machine)
                WebDriverWait wait = new WebDriverWait(driver, Duration.ofSeconds(30));
                wait.ignoring(StaleElementReferenceException.class);
                driver.get(server.url() + "/");
                wait.until(d -> d.findElements(By.cssSelector("#strip .tok")).size() == 50);

                // type a sequence holding a learned trigram (a, b, c) at positions 2..4
                WebElement input = driver.findElement(By.id("tokens-input"));
                input.clear();
                String typed = "5 9 " + learned.a() + " " + learned.b() + " " + learned.c() + " 7 12";
                input.sendKeys(typed);
                wait.until(d -> d.findElements(By.cssSelector("#strip .tok")).size() == 7
                        && tokenAt(d, 3).getText().contains(Integer.toString(learned.b())));
                WebElement pred = tokenAt(driver, 3).findElement(By.className("pred"));
                assertThat(pred.getAttribute("data-token")).isEqualTo(Integer.toString(learned.c()));
                assertThat(Double.parseDouble(pred.getAttribute("data-prob"))).isGreaterThan(0.5);
                assertThat(tokenAt(driver, 3).getAttribute("class")).contains("rule");
                int[] t = {5, 9, learned.a(), learned.b(), learned.c(), 7, 12};
                for (int i = 0; i < t.length; i++) {
                    assertThat(tokenAt(driver, i).getAttribute("class").contains("rule")).as("rule mark at %d", i)
                            .isEqualTo(a.rule(t, i) != null);
                }

                // hovering b shades a, its previous token; hovering another token shades something else
                new Actions(driver).moveToElement(tokenAt(driver, 3)).perform();
                String atB = attentions(driver);
                assertThat(Double.parseDouble(tokenAt(driver, 2).getAttribute("data-attention"))).isGreaterThan(0.5);
                assertThat(driver.findElement(By.id("tooltip")).getText()).contains("rule: (" + learned.a() + ", "
                        + learned.b() + ") \u2192 " + learned.c());
                new Actions(driver).moveToElement(tokenAt(driver, 6)).perform();
                assertThat(attentions(driver)).isNotEqualTo(atB);

                tokenAt(driver, 3).click();
                assertThat(driver.findElement(By.id("rule-verdict")).getText()).contains("rule fires: ("
                        + learned.a() + ", " + learned.b() + ") \u2192 " + learned.c());
                wait.until(d -> d.findElement(By.id("dla-hint")).getText().contains("predicted token " + learned.c()));
                assertThat(driver.findElements(By.cssSelector("#dla .b"))).hasSizeGreaterThan(3);

                // insert a trigram picked from the extracted table at position 1: the rule fires at 2
                driver.findElement(By.id("trigram-summary")).click();
                driver.findElement(By.id("trigram-filter")).sendKeys(Integer.toString(learned.c()));
                WebElement row = driver.findElement(By.cssSelector("#trigram-table tbody tr"));
                List<WebElement> cells = row.findElements(By.tagName("td"));
                String[] abc = {cells.get(0).getText(), cells.get(1).getText(), cells.get(2).getText()};
                assertThat(List.of(abc)).contains(Integer.toString(learned.c()));
                row.click();
                WebElement at = driver.findElement(By.id("insert-pos"));
                at.clear();
                at.sendKeys("1");
                driver.findElement(By.id("insert-btn")).click();
                wait.until(d -> tokenAt(d, 2).getText().startsWith("2\n" + abc[1] + "\n"));
                assertThat(tokenAt(driver, 1).getText()).startsWith("1\n" + abc[0] + "\n");
                assertThat(tokenAt(driver, 2).getAttribute("class")).contains("rule").contains("sel");
                assertThat(tokenAt(driver, 2).findElement(By.className("pred")).getAttribute("data-token"))
                        .isEqualTo(abc[2]);

                // the patch experiment on sequence 0: position 21's attention onto 15
                driver.findElement(By.id("seq-load")).click();
                wait.until(d -> d.findElements(By.cssSelector("#strip .tok")).size() == 50);
                driver.findElement(By.id("patch-mode")).click();
                tokenAt(driver, 21).click();
                tokenAt(driver, 15).click();
                WebElement patch = driver.findElement(By.id("patch-result"));
                wait.until(d -> patch.getAttribute("data-after") != null);
                assertThat(patch.getAttribute("data-before")).isEqualTo("62");
                assertThat(patch.getAttribute("data-after")).isEqualTo("38");
                assertThat(patch.getText()).contains("\u2192 38 (p = 1.000)");

                driver.findElement(By.id("ablate-btn")).click();
                wait.until(d -> !d.findElements(By.id("effect-summary")).isEmpty());
                assertThat(driver.findElement(By.id("effect-summary")).getText()).startsWith("zero-ablating L0H0");

                assertThat(driver.findElement(By.id("compare")).isDisplayed()).isTrue();
                wait.until(d -> d.findElement(By.id("compare-summary")).getText().contains("agree at"));
                assertThat(driver.findElements(By.cssSelector("#corr-table tbody tr"))).hasSizeGreaterThan(5);

                for (LogEntry e : driver.manage().logs().get(LogType.BROWSER)) {
                    assertThat(e.getLevel()).as("browser console: " + e.getMessage()).isNotEqualTo(Level.SEVERE);
                }
                screenshot(driver, 1280, "probe-1280.png");
                screenshot(driver, 480, "probe-480.png");
            } finally {
                driver.quit();
            }
        }
    }

    private static WebElement tokenAt(WebDriver d, int pos) {
        return d.findElement(By.cssSelector("#strip .tok[data-pos='" + pos + "']"));
    }

    private static String attentions(WebDriver d) {
        StringBuilder sb = new StringBuilder();
        List<WebElement> tokens = d.findElements(By.cssSelector("#strip .tok"));
        for (WebElement t : tokens) {
            sb.append(t.getAttribute("data-attention")).append(',');
        }
        return sb.toString();
    }

    /** The whole page at this width, into the build directory. */
    private static void screenshot(WebDriver driver, int width, String name) throws Exception {
        driver.manage().window().setSize(new Dimension(width, 1000));
        Thread.sleep(300); // let the resize handler redraw the canvas
        Number h = (Number) ((JavascriptExecutor) driver).executeScript(
                "return document.documentElement.scrollHeight");
        driver.manage().window().setSize(new Dimension(width, Math.min(8000, h.intValue() + 100)));
        Thread.sleep(300);
        byte[] png = ((ChromeDriver) driver).getScreenshotAs(OutputType.BYTES);
        Path shot = Path.of(System.getProperty("trilens.buildDir", "target"), name);
        Files.createDirectories(shot.getParent());
        Files.write(shot, png);
    }
}
