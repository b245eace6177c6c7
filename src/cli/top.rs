//! `respite top --addr host:port`: a live view of a running proxy, one row per
//! namespace, refreshed every `--interval` from `RESPITE STATS` (read by `cli` on one
//! admin connection, opened again on the next refresh if it fails). On a terminal it
//! draws on the alternate screen until `q`, Esc or Ctrl-C; otherwise it prints one
//! block of plain lines per refresh. What is shown is computed in `frame`.

mod frame;

use std::{
    io::{self, ErrorKind, IsTerminal, Stdout, Write},
    process::ExitCode,
    time::{Duration, Instant, SystemTime},
};

use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    execute, queue,
    style::Print,
    terminal::{self, ClearType},
};

use self::frame::{Frame, Snapshot};

/// `RESPITE STATS` as field/value pairs, or why it could not be read.
pub type Fields = Result<Vec<(String, String)>, String>;

/// `respite top`'s options (with `--addr` and `--password`, which `cli` reads).
#[derive(clap::Args)]
pub struct TopArgs {
    /// Time between refreshes (100ms at least).
    #[arg(long, default_value = "1s", value_parser = interval)]
    pub interval: Duration,
    /// Stop after this many refreshes (default: until `q`, or forever when stdout is
    /// not a terminal).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
}

fn interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("refreshing more often than every 100ms".to_owned());
    }
    Ok(d)
}

/// Runs the view of the proxy at `addr`, reading STATS with `fetch` at each refresh;
/// exit code 1 if the first read fails (later failures are shown in the view, and the
/// next refresh tries again).
pub fn run(args: &TopArgs, addr: &str, fetch: impl FnMut() -> Fields) -> ExitCode {
    let tty = io::stdout().is_terminal();
    let mut view = View {
        fetch,
        addr: addr.to_owned(),
        last: None,
        hint: if tty { "   (q quits)" } else { "" },
    };
    let first = match view.refresh() {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("respite: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pace = Pace {
        interval: args.interval,
        iterations: args.iterations,
    };
    let shown = if tty {
        terminal(&mut view, first, &pace)
    } else {
        plain(&mut view, first, &pace, &mut io::stdout().lock())
    };
    match shown {
        Ok(()) => ExitCode::SUCCESS,
        // `respite top | head`: the reader has seen enough.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("respite: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How often to refresh, and how many times.
struct Pace {
    interval: Duration,
    iterations: Option<u64>,
}

impl Pace {
    fn done(&self, shown: u64) -> bool {
        self.iterations.is_some_and(|n| shown >= n)
    }

    /// The time of the refresh after the one due at `due`, never in the past.
    fn next(&self, due: Instant) -> Instant {
        (due + self.interval).max(Instant::now())
    }
}

/// Where STATS comes from, and the previous reading, for rates.
struct View<F> {
    fetch: F,
    addr: String,
    last: Option<(Snapshot, Instant)>,
    hint: &'static str,
}

impl<F: FnMut() -> Fields> View<F> {
    /// Reads STATS once more: the lines to show, or why it could not be read.
    fn refresh(&mut self) -> Result<Vec<String>, String> {
        let snapshot = Snapshot::parse(&(self.fetch)()?);
        let now = Instant::now();
        let frame = match &self.last {
            Some((prev, at)) => Frame::between(Some(prev), &snapshot, now - *at),
            None => Frame::between(None, &snapshot, Duration::ZERO),
        };
        self.last = Some((snapshot, now));
        Ok(frame.lines(&self.title()))
    }

    /// The lines of a refresh, or of the reason it failed.
    fn lines(&mut self) -> Vec<String> {
        self.refresh()
            .unwrap_or_else(|e| vec![self.title(), format!("error: {e} (retrying)")])
    }

    fn title(&self) -> String {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        format!("respite top   {}   {now}{}", self.addr, self.hint)
    }
}

/// Without a terminal: each refresh as a block of lines, then an empty line.
fn plain<F: FnMut() -> Fields>(
    view: &mut View<F>,
    first: Vec<String>,
    pace: &Pace,
    out: &mut impl Write,
) -> io::Result<()> {
    let (mut lines, mut shown, mut due) = (first, 0, Instant::now());
    loop {
        for line in &lines {
            writeln!(out, "{line}")?;
        }
        writeln!(out)?;
        out.flush()?;
        shown += 1;
        if pace.done(shown) {
            return Ok(());
        }
        due = pace.next(due);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        lines = view.lines();
    }
}

/// On a terminal: redraw in place until a quit key or the last refresh.
fn terminal<F: FnMut() -> Fields>(
    view: &mut View<F>,
    first: Vec<String>,
    pace: &Pace,
) -> io::Result<()> {
    let mut screen = Screen::enter()?;
    let (mut lines, mut shown, mut due) = (first, 0, Instant::now());
    loop {
        screen.draw(&lines)?;
        shown += 1;
        if pace.done(shown) {
            return Ok(());
        }
        due = pace.next(due);
        loop {
            match wait(due)? {
                Wake::Quit => return Ok(()),
                Wake::Resize => screen.draw(&lines)?,
                Wake::Tick => break,
            }
        }
        lines = view.lines();
    }
}

enum Wake {
    Tick,
    Quit,
    Resize,
}

/// Waits for `until`, or for a key that quits or a change of the terminal's size.
fn wait(until: Instant) -> io::Result<Wake> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(Wake::Tick);
        }
        match event::read()? {
            Event::Key(key) if quits(&key) => return Ok(Wake::Quit),
            Event::Resize(..) => return Ok(Wake::Resize),
            _ => {}
        }
    }
}

/// `q`, Esc, or Ctrl-C (which raw mode delivers as a key).
fn quits(key: &KeyEvent) -> bool {
    key.kind != KeyEventKind::Release
        && match key.code {
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

/// The terminal in raw mode on the alternate screen, restored when dropped (also on
/// an error or a panic).
struct Screen {
    out: Stdout,
}

impl Screen {
    fn enter() -> io::Result<Screen> {
        terminal::enable_raw_mode()?;
        let mut screen = Screen { out: io::stdout() };
        execute!(screen.out, terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }

    /// Draws `lines` from the top left, each cut to the terminal's width, as many as
    /// fit its height.
    fn draw(&mut self, lines: &[String]) -> io::Result<()> {
        let (cols, rows) = terminal::size().unwrap_or((0, 0));
        // A size of 0 means unknown (some pseudo-terminals): draw everything.
        let cols = if cols == 0 { usize::MAX } else { cols.into() };
        let rows = if rows == 0 { u16::MAX } else { rows };
        for (y, line) in (0..rows).zip(lines) {
            let line: String = line.chars().take(cols).collect();
            queue!(
                self.out,
                cursor::MoveTo(0, y),
                Print(line),
                terminal::Clear(ClearType::UntilNewLine)
            )?;
        }
        queue!(self.out, terminal::Clear(ClearType::FromCursorDown))?;
        self.out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(self.out, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(hits: u64) -> Fields {
        let pairs = [("upstream", "up"), ("ns:c:l1_misses", "1")];
        let mut fields: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fields.push(("ns:c:l1_hits".into(), hits.to_string()));
        Ok(fields)
    }

    #[test]
    fn plain_prints_a_block_per_refresh_and_shows_failures() {
        let mut replies = vec![stats(3), Err("connection lost".into()), stats(7)].into_iter();
        let mut view = View {
            fetch: move || replies.next().expect("3 reads at most"),
            addr: "proxy:6380".into(),
            last: None,
            hint: "",
        };
        let first = view.refresh().expect("first read");
        let pace = Pace {
            interval: Duration::ZERO,
            iterations: Some(3),
        };
        let mut out = Vec::new();
        plain(&mut view, first, &pace, &mut out).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let blocks: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{text}");
        assert!(
            blocks
                .iter()
                .all(|b| b.starts_with("respite top   proxy:6380"))
        );
        assert!(blocks[0].contains("75.0%"), "{text}");
        assert!(
            blocks[1].ends_with("error: connection lost (retrying)"),
            "{text}"
        );
        // Over the interval since the last good reading: 4 hits, no miss.
        assert!(blocks[2].contains("100.0%"), "{text}");
    }

    #[test]
    fn interval_is_a_duration_of_100ms_or_more() {
        assert_eq!(interval("250ms"), Ok(Duration::from_millis(250)));
        assert!(interval("10ms").is_err());
        assert!(interval("soon").is_err());
    }

    #[test]
    fn quit_keys() {
        let key = |code, modifiers| quits(&KeyEvent::new(code, modifiers));
        assert!(key(KeyCode::Char('q'), KeyModifiers::NONE));
        assert!(key(KeyCode::Esc, KeyModifiers::NONE));
        assert!(key(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(!key(KeyCode::Char('c'), KeyModifiers::NONE));
        assert!(!key(KeyCode::Char(' '), KeyModifiers::NONE));
    }
}
