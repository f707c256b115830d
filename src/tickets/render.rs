//! What a ticket holder sees: the QR code of a ticket's signed code as SVG, and a PDF with one
//! page per ticket.
//!
//! Everything is drawn here, with nothing fetched: the DejaVu fonts are compiled in and only the
//! glyphs a document uses are embedded, and the QR code is vector rectangles, so a print or a
//! zoomed phone screen stays sharp enough to scan.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{anyhow, ensure, Context as _};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use qrcode::{Color, EcLevel, QrCode};
use subsetter::GlyphRemapper;
use ttf_parser::{Face, GlyphId};

/// What one PDF page shows.
pub struct TicketPage {
    pub event_title: String,
    /// Already formatted for people, e.g. "Thu 31 Dec 2026, 18:00 UTC", or None.
    pub event_date: Option<String>,
    pub venue: Option<String>,
    pub city: Option<String>,
    pub ticket_type: String,
    /// "Firstname Lastname".
    pub holder: String,
    /// 1-based ticket number.
    pub number: i32,
    /// Tickets in the booking, to print "Ticket 2 of 3".
    pub seat_count: i32,
    pub booking_reference: String,
    /// The signed ticket code the QR encodes.
    pub code: String,
}

/// A QR code of `code` as a standalone SVG document (dark modules on white, quiet zone included).
pub fn qr_svg(code: &str) -> anyhow::Result<String> {
    let qr = qr_code(code)?;
    let side = qr.width() as u32 + 2 * QUIET_ZONE;
    let mut svg = format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{px}" height="{px}""#,
            r#" viewBox="0 0 {side} {side}" shape-rendering="crispEdges">"#,
            r##"<rect x="0" y="0" width="{side}" height="{side}" fill="#ffffff"/>"##,
            r##"<path fill="#000000" d=""##,
        ),
        px = side * SVG_PIXELS_PER_MODULE,
        side = side,
    );
    for (x, y, len) in dark_runs(&qr) {
        let (x, y) = (x + QUIET_ZONE, y + QUIET_ZONE);
        write!(svg, "M{x} {y}h{len}v1h-{len}z").expect("writing to a String");
    }
    svg.push_str(r#""/></svg>"#);
    Ok(svg)
}

/// A PDF with one A4 page per ticket: event title, date, venue and city, ticket type, holder's
/// name, "Ticket N of M", the booking reference, and a QR code of `code` 8.5 cm wide. The fonts
/// are embedded (subset); nothing is fetched.
pub fn tickets_pdf(pages: &[TicketPage]) -> anyhow::Result<Vec<u8>> {
    ensure!(!pages.is_empty(), "a ticket PDF needs at least one ticket");
    let mut fonts = Fonts::load()?;
    let mut next_ref = Ref::new(1);
    let catalog = next_ref.bump();
    let page_tree = next_ref.bump();
    let font_refs = [next_ref.bump(), next_ref.bump()];
    let info = next_ref.bump();

    let mut pdf = Pdf::new();
    let mut page_refs = Vec::with_capacity(pages.len());
    for ticket in pages {
        let content = draw_ticket(ticket, &mut fonts)?;
        let (page_ref, content_ref) = (next_ref.bump(), next_ref.bump());
        let mut page = pdf.page(page_ref);
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .parent(page_tree)
            .contents(content_ref);
        let mut resources = page.resources();
        let mut font_dict = resources.fonts();
        for (font, font_ref) in fonts.all().into_iter().zip(font_refs) {
            font_dict.pair(Name(font.resource), font_ref);
        }
        font_dict.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_ref, &deflate(&content))
            .filter(Filter::FlateDecode);
        page_refs.push(page_ref);
    }
    let count = i32::try_from(page_refs.len()).context("too many tickets for one PDF")?;
    pdf.pages(page_tree).kids(page_refs).count(count);
    pdf.catalog(catalog).pages(page_tree);
    pdf.document_info(info)
        .title(TextStr(&format!("Tickets: {}", pages[0].event_title)))
        .producer(TextStr("event-booking"));
    for (font, font_ref) in fonts.all().into_iter().zip(font_refs) {
        font.write(&mut pdf, font_ref, &mut next_ref)?;
    }
    Ok(pdf.finish())
}

/// Modules of white around the code, as the QR standard asks for.
const QUIET_ZONE: u32 = 4;
const SVG_PIXELS_PER_MODULE: u32 = 8;

/// Level M (15% of the code may be damaged) keeps a ~300-character code at version 12 or 13:
/// modules of about 1.3 mm at 8.5 cm, easy for a phone camera on paper or a screen.
fn qr_code(code: &str) -> anyhow::Result<QrCode> {
    QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M)
        .map_err(|e| anyhow!("cannot encode the ticket code as a QR code: {e}"))
}

/// The dark modules, row by row, as horizontal runs `(x, y, length)` in modules from the top
/// left of the code (quiet zone not included): half as many shapes as there are dark modules.
fn dark_runs(qr: &QrCode) -> Vec<(u32, u32, u32)> {
    let width = qr.width();
    let colors = qr.to_colors();
    let mut runs = Vec::new();
    for (y, row) in colors.chunks(width).enumerate() {
        let mut x = 0;
        while x < width {
            if row[x] == Color::Dark {
                let start = x;
                while x < width && row[x] == Color::Dark {
                    x += 1;
                }
                runs.push((start as u32, y as u32, (x - start) as u32));
            } else {
                x += 1;
            }
        }
    }
    runs
}

// ---- page layout (PDF points, origin at the bottom left) -------------------------------------

const MM: f32 = 72.0 / 25.4;
const PAGE_WIDTH: f32 = 210.0 * MM;
const PAGE_HEIGHT: f32 = 297.0 * MM;
const MARGIN: f32 = 20.0 * MM;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;
const COLUMN_GAP: f32 = 10.0 * MM;
/// The QR code's side without its quiet zone.
const QR_SIZE: f32 = 85.0 * MM;
const LABEL_GRAY: f32 = 0.4;

#[derive(Clone, Copy)]
struct Style {
    bold: bool,
    size: f32,
    gray: f32,
}

const LABEL: Style = Style {
    bold: true,
    size: 8.5,
    gray: LABEL_GRAY,
};
const TITLE: Style = Style {
    bold: true,
    size: 26.0,
    gray: 0.0,
};
const SUBTITLE: Style = Style {
    bold: false,
    size: 13.0,
    gray: 0.15,
};
const VALUE: Style = Style {
    bold: true,
    size: 15.0,
    gray: 0.0,
};
const NOTE: Style = Style {
    bold: false,
    size: 9.5,
    gray: LABEL_GRAY,
};

/// One page's content stream; `y` is the baseline of the last line drawn, moving down.
struct Page<'f> {
    content: Content,
    fonts: &'f mut Fonts,
    y: f32,
}

fn draw_ticket(ticket: &TicketPage, fonts: &mut Fonts) -> anyhow::Result<Vec<u8>> {
    let of = format!("Ticket {} of {}", ticket.number, ticket.seat_count);
    let mut page = Page {
        content: Content::new(),
        fonts,
        y: PAGE_HEIGHT - MARGIN,
    };

    page.y -= LABEL.size;
    page.text(LABEL, MARGIN, "EVENT TICKET");
    page.text_right(VALUE, PAGE_WIDTH - MARGIN, &of);
    page.y -= 6.0;
    page.paragraph(TITLE, MARGIN, CONTENT_WIDTH, &ticket.event_title, 3);
    page.y -= 4.0;
    if let Some(date) = &ticket.event_date {
        page.paragraph(SUBTITLE, MARGIN, CONTENT_WIDTH, date, 1);
    }
    let place: Vec<&str> = [&ticket.venue, &ticket.city]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if !place.is_empty() {
        page.paragraph(SUBTITLE, MARGIN, CONTENT_WIDTH, &place.join(", "), 2);
    }

    page.y -= 14.0;
    page.rule();
    let number = format!("{} of {}", ticket.number, ticket.seat_count);
    page.fields([
        ("TICKET TYPE", &ticket.ticket_type),
        ("HOLDER", &ticket.holder),
    ]);
    page.fields([
        ("TICKET", &number),
        ("BOOKING REFERENCE", &ticket.booking_reference),
    ]);
    page.y -= 6.0;
    page.rule();

    page.qr(&ticket.code)?;
    page.y -= 12.0;
    page.text_centered(
        NOTE,
        "Show this code at the entrance. It admits one person, once.",
    );
    page.y -= NOTE.size * 1.4;
    let footer = format!("Booking {} · {of}", ticket.booking_reference);
    page.text_centered(NOTE, &footer);
    Ok(page.content.finish().to_vec())
}

impl Page<'_> {
    fn text(&mut self, style: Style, x: f32, text: &str) {
        let font = self.fonts.get(style.bold);
        let encoded = font.encode(text);
        self.content
            .begin_text()
            .set_font(Name(font.resource), style.size)
            .set_fill_gray(style.gray)
            .next_line(x, self.y)
            .show(Str(&encoded))
            .end_text();
    }

    fn text_right(&mut self, style: Style, right: f32, text: &str) {
        let width = self.fonts.get(style.bold).width(text, style.size);
        self.text(style, right - width, text);
    }

    fn text_centered(&mut self, style: Style, text: &str) {
        let text = self
            .fonts
            .get(style.bold)
            .fit(text, style.size, CONTENT_WIDTH, 1);
        let width = self.fonts.get(style.bold).width(&text[0], style.size);
        self.text(style, (PAGE_WIDTH - width) / 2.0, &text[0]);
    }

    /// `text` wrapped to `width`, at most `max_lines` lines, the first baseline one line below
    /// the current one.
    fn paragraph(&mut self, style: Style, x: f32, width: f32, text: &str, max_lines: usize) {
        for line in self
            .fonts
            .get(style.bold)
            .fit(text, style.size, width, max_lines)
        {
            self.y -= style.size * 1.2;
            self.text(style, x, &line);
        }
    }

    /// Two labelled values side by side.
    fn fields(&mut self, pairs: [(&str, &str); 2]) {
        let column = (CONTENT_WIDTH - COLUMN_GAP) / 2.0;
        self.y -= 24.0;
        let top = self.y;
        let mut bottom = top;
        for (i, (label, value)) in pairs.into_iter().enumerate() {
            let x = MARGIN + i as f32 * (column + COLUMN_GAP);
            self.y = top;
            self.text(LABEL, x, label);
            self.y -= 2.0;
            self.paragraph(VALUE, x, column, value, 3);
            bottom = bottom.min(self.y);
        }
        self.y = bottom;
    }

    fn rule(&mut self) {
        self.y -= 4.0;
        self.content
            .set_stroke_gray(0.75)
            .set_line_width(0.8)
            .move_to(MARGIN, self.y)
            .line_to(PAGE_WIDTH - MARGIN, self.y)
            .stroke();
    }

    /// The QR code, centred, below a quiet zone. All modules are one path filled once, so no
    /// hairline seams show between neighbouring rectangles.
    fn qr(&mut self, code: &str) -> anyhow::Result<()> {
        let qr = qr_code(code)?;
        let module = QR_SIZE / qr.width() as f32;
        let left = (PAGE_WIDTH - QR_SIZE) / 2.0;
        let top = self.y - (QUIET_ZONE as f32 * module).max(6.0 * MM);
        self.content.set_fill_gray(0.0);
        for (x, y, len) in dark_runs(&qr) {
            self.content.rect(
                left + x as f32 * module,
                top - (y + 1) as f32 * module,
                len as f32 * module,
                module,
            );
        }
        self.content.fill_nonzero();
        self.y = top - QR_SIZE - QUIET_ZONE as f32 * module;
        Ok(())
    }
}

// ---- fonts ------------------------------------------------------------------------------------

struct Fonts {
    regular: Font,
    bold: Font,
}

impl Fonts {
    fn load() -> anyhow::Result<Self> {
        Ok(Self {
            regular: Font::load(
                include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
                "DejaVuSans",
                b"F1",
            )?,
            bold: Font::load(
                include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf"),
                "DejaVuSans-Bold",
                b"F2",
            )?,
        })
    }

    fn get(&mut self, bold: bool) -> &mut Font {
        if bold {
            &mut self.bold
        } else {
            &mut self.regular
        }
    }

    fn all(&self) -> [&Font; 2] {
        [&self.regular, &self.bold]
    }
}

/// A TrueType font and the glyphs a document used from it, written as a CID font: text is
/// shown as 2-byte glyph ids of the subset, and a ToUnicode map keeps it searchable and
/// copyable. One glyph per character, no shaping: right for Latin, Greek and Cyrillic; a
/// character the font lacks shows as an empty box.
struct Font {
    data: &'static [u8],
    face: Face<'static>,
    postscript_name: &'static str,
    resource: &'static [u8],
    glyphs: GlyphRemapper,
    /// Subset glyph id → the character it shows.
    chars: BTreeMap<u16, char>,
}

const SYSTEM_INFO: SystemInfo = SystemInfo {
    registry: Str(b"Adobe"),
    ordering: Str(b"Identity"),
    supplement: 0,
};

impl Font {
    fn load(
        data: &'static [u8],
        postscript_name: &'static str,
        resource: &'static [u8],
    ) -> anyhow::Result<Self> {
        let face = Face::parse(data, 0).with_context(|| format!("parsing {postscript_name}"))?;
        Ok(Self {
            data,
            face,
            postscript_name,
            resource,
            glyphs: GlyphRemapper::new(),
            chars: BTreeMap::new(),
        })
    }

    fn glyph(&self, c: char) -> GlyphId {
        // Line breaks and tabs in user text would show as boxes.
        let c = if c.is_control() { ' ' } else { c };
        self.face.glyph_index(c).unwrap_or(GlyphId(0))
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text
            .chars()
            .map(|c| u32::from(self.face.glyph_hor_advance(self.glyph(c)).unwrap_or(0)))
            .sum();
        units as f32 * size / f32::from(self.face.units_per_em())
    }

    /// `text` as the glyph ids of the subset (Identity-H encoding), adding its glyphs to it.
    fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(2 * text.len());
        for c in text.chars() {
            let glyph = self.glyph(c);
            let id = self.glyphs.remap(glyph.0);
            if glyph.0 != 0 {
                self.chars.entry(id).or_insert(c);
            }
            bytes.extend(id.to_be_bytes());
        }
        bytes
    }

    /// `text` broken at spaces into lines no wider than `width` (a word longer than a line is
    /// broken anywhere); past `max_lines`, the last line ends in "…".
    fn fit(&self, text: &str, size: f32, width: f32, max_lines: usize) -> Vec<String> {
        let fits = |s: &str| self.width(s, size) <= width;
        let mut lines: Vec<String> = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if fits(&candidate) {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            for c in word.chars() {
                line.push(c);
                if !fits(&line) && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, c.to_string()));
                }
            }
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
        if lines.len() > max_lines {
            lines.truncate(max_lines);
            let last = lines.last_mut().expect("max_lines is at least 1");
            while !last.is_empty() && !fits(&format!("{last}…")) {
                last.pop();
            }
            *last = format!("{}…", last.trim_end());
        }
        lines
    }

    /// Writes the Type0 font `font_ref` and what it refers to: the CID font, its descriptor,
    /// the subset font program (FontFile2) and the ToUnicode map.
    fn write(&self, pdf: &mut Pdf, font_ref: Ref, next_ref: &mut Ref) -> anyhow::Result<()> {
        let (cid_ref, descriptor_ref) = (next_ref.bump(), next_ref.bump());
        let (program_ref, cmap_ref) = (next_ref.bump(), next_ref.bump());
        let program = subsetter::subset(self.data, 0, &self.glyphs)
            .map_err(|e| anyhow!("subsetting {}: {e}", self.postscript_name))?;
        // A subset's name starts with a tag of six capitals that differs between subsets.
        let name = format!("{}+{}", self.subset_tag(), self.postscript_name);
        let name = Name(name.as_bytes());
        let to_pdf = |units: f32| units * 1000.0 / f32::from(self.face.units_per_em());

        pdf.type0_font(font_ref)
            .base_font(name)
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid_ref)
            .to_unicode(cmap_ref);

        let mut cid_font = pdf.cid_font(cid_ref);
        cid_font
            .subtype(CidFontType::Type2)
            .base_font(name)
            .system_info(SYSTEM_INFO)
            .font_descriptor(descriptor_ref)
            .cid_to_gid_map_predefined(Name(b"Identity"));
        let widths = self.glyphs.remapped_gids().map(|old| {
            to_pdf(f32::from(
                self.face.glyph_hor_advance(GlyphId(old)).unwrap_or(0),
            ))
        });
        cid_font.widths().consecutive(0, widths);
        cid_font.finish();

        let bbox = self.face.global_bounding_box();
        let weight = f32::from(self.face.weight().to_number());
        pdf.font_descriptor(descriptor_ref)
            .name(name)
            .flags(FontFlags::SYMBOLIC)
            .bbox(Rect::new(
                to_pdf(bbox.x_min.into()),
                to_pdf(bbox.y_min.into()),
                to_pdf(bbox.x_max.into()),
                to_pdf(bbox.y_max.into()),
            ))
            .italic_angle(self.face.italic_angle())
            .ascent(to_pdf(self.face.ascender().into()))
            .descent(to_pdf(self.face.descender().into()))
            .cap_height(to_pdf(
                self.face
                    .capital_height()
                    .unwrap_or(self.face.ascender())
                    .into(),
            ))
            .stem_v(10.0 + 0.244 * (weight - 50.0))
            .font_file2(program_ref);

        let length = i32::try_from(program.len()).context("font subset too large")?;
        pdf.stream(program_ref, &deflate(&program))
            .filter(Filter::FlateDecode)
            .pair(Name(b"Length1"), length);

        let mut cmap = UnicodeCmap::new(Name(b"Custom"), SYSTEM_INFO);
        for (&id, &c) in &self.chars {
            cmap.pair(id, c);
        }
        pdf.cmap(cmap_ref, &deflate(&cmap.finish()))
            .filter(Filter::FlateDecode);
        Ok(())
    }

    fn subset_tag(&self) -> String {
        // FNV-1a over the glyph list: the same subset gets the same tag, so output is stable.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for glyph in self.glyphs.remapped_gids() {
            for byte in glyph.to_be_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        (0..6)
            .map(|i| char::from(b'A' + ((hash >> (i * 8)) % 26) as u8))
            .collect()
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string shaped like a ticket's compact JWS (about 280 characters).
    fn jws_like() -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let part = |len: usize, seed: usize| -> String {
            (0..len)
                .map(|i| char::from(alphabet[(i * 31 + seed * 7 + i * i) % 64]))
                .collect()
        };
        format!("{}.{}.{}", part(40, 1), part(150, 2), part(86, 3))
    }

    fn ticket(number: i32, seat_count: i32) -> TicketPage {
        TicketPage {
            event_title: "Café Night".into(),
            event_date: Some("Thu 31 Dec 2026, 18:00 UTC".into()),
            venue: Some("Opera House".into()),
            city: Some("Zürich".into()),
            ticket_type: "General admission".into(),
            holder: "Zoë Müller".into(),
            number,
            seat_count,
            booking_reference: "BK-7Q2X9M".into(),
            code: jws_like(),
        }
    }

    fn inflate_streams(pdf: &[u8]) -> Vec<Vec<u8>> {
        let mut streams = Vec::new();
        let mut rest = pdf;
        while let Some(start) = find(rest, b">>\nstream\n") {
            let body = &rest[start + b">>\nstream\n".len()..];
            let end = find(body, b"\nendstream").expect("every stream ends");
            if let Ok(data) = miniz_oxide::inflate::decompress_to_vec_zlib(&body[..end]) {
                streams.push(data);
            }
            rest = &body[end..];
        }
        streams
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
    }

    #[test]
    fn the_qr_svg_is_a_well_formed_svg_document() {
        let svg = qr_svg(&jws_like()).unwrap();
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let path = root.children().find(|n| n.has_tag_name("path")).unwrap();
        assert!(path.attribute("d").unwrap().len() > 1000);
    }

    #[test]
    fn a_code_too_long_for_any_qr_version_is_an_error() {
        assert!(qr_svg(&"x".repeat(5000)).is_err());
    }

    #[test]
    fn the_pdf_has_one_page_per_ticket_and_embeds_its_fonts() {
        let pages: Vec<_> = (1..=3).map(|n| ticket(n, 3)).collect();
        let pdf = tickets_pdf(&pages).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let page_objects = count(&pdf, b"/Type /Page") - count(&pdf, b"/Type /Pages");
        assert_eq!(page_objects, 3);
        assert!(find(&pdf, b"/Count 3").is_some());
        assert_eq!(count(&pdf, b"/FontFile2"), 2);
        assert!(find(&pdf, b"+DejaVuSans-Bold").is_some());
        // Subsets, not the whole 700 kB fonts.
        assert!(pdf.len() < 100_000, "{} bytes", pdf.len());
    }

    #[test]
    fn non_ascii_text_uses_real_glyphs_and_stays_searchable() {
        let fonts = Fonts::load().unwrap();
        for c in "Zürich Café Zoë ·…".chars() {
            assert_ne!(fonts.regular.glyph(c).0, 0, "{c}");
            assert_ne!(fonts.bold.glyph(c).0, 0, "{c}");
        }
        let pdf = tickets_pdf(&[ticket(1, 1)]).unwrap();
        let cmaps: Vec<String> = inflate_streams(&pdf)
            .into_iter()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .filter(|s| s.contains("begincmap"))
            .collect();
        assert_eq!(cmaps.len(), 2);
        // ü and é map back to their characters in the ToUnicode maps.
        assert!(cmaps.iter().any(|m| m.contains("<00FC>")));
        assert!(cmaps.iter().any(|m| m.contains("<00E9>")));
    }

    #[test]
    fn an_empty_list_of_tickets_is_an_error() {
        assert!(tickets_pdf(&[]).is_err());
    }

    #[test]
    fn long_text_wraps_and_ends_in_an_ellipsis() {
        let fonts = Fonts::load().unwrap();
        let title = "Symphonic ".repeat(40);
        let lines = fonts.bold.fit(&title, 26.0, CONTENT_WIDTH, 3);
        assert_eq!(lines.len(), 3);
        assert!(lines[2].ends_with('…'));
        for line in &lines {
            assert!(fonts.bold.width(line, 26.0) <= CONTENT_WIDTH);
        }
        let word = "x".repeat(300);
        let lines = fonts.regular.fit(&word, 15.0, 100.0, 2);
        assert_eq!(lines.len(), 2);
        assert!(fonts.regular.width(&lines[1], 15.0) <= 100.0);
        assert_eq!(fonts.regular.fit("", 15.0, 100.0, 2), vec![String::new()]);
    }

    /// Writes a sample PDF (3 tickets) and SVG under target/ticket-samples/ to look at:
    /// `cargo test --lib tickets -- --ignored`, then e.g. `pdftoppm -png -r 60` on the PDF.
    #[test]
    #[ignore = "writes files for a person to look at"]
    fn write_samples() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ticket-samples");
        std::fs::create_dir_all(&dir).unwrap();
        let pages: Vec<_> = (1..=3).map(|n| ticket(n, 3)).collect();
        std::fs::write(dir.join("tickets.pdf"), tickets_pdf(&pages).unwrap()).unwrap();
        std::fs::write(dir.join("qr.svg"), qr_svg(&pages[0].code).unwrap()).unwrap();
        let mut long = ticket(1, 12);
        long.event_title = "The Grand Midsummer Symphonic Celebration of Baroque, Romantic and \
            Contemporary Orchestral Masterpieces Performed Live Under the Stars"
            .into();
        long.venue =
            Some("Tonhalle am Bürkliplatz, Großer Saal (entrance via Claridenstrasse)".into());
        long.holder = "Maximiliane Alexandra Wilhelmina von Hohenzollern-Sigmaringen".into();
        long.ticket_type =
            "VIP: backstage, champagne reception and reserved front-row seats".into();
        long.event_date = None;
        std::fs::write(dir.join("long.pdf"), tickets_pdf(&[long]).unwrap()).unwrap();
    }

    #[test]
    fn a_page_without_date_or_place_still_renders() {
        let mut page = ticket(1, 1);
        page.event_date = None;
        page.venue = None;
        page.city = Some("  ".into());
        page.holder = "Ada\nLovelace".into();
        let pdf = tickets_pdf(&[page]).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
    }
}
