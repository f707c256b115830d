//! Reading a ticket's QR code back from the SVG the API serves, as a scanner would: the SVG's
//! shapes are painted onto a grayscale image and a QR decoder reads that image. Nothing here
//! knows how the SVG was made, so a code that does not scan fails the test.

use event_booking::tickets::render::qr_svg;

/// The text encoded by the QR code drawn in `svg`. Reads `rect` and `path` elements made of
/// axis-aligned rectangles (what `qr_svg` writes); white fills paint light, any other fill dark.
/// Panics when the SVG has no QR code that decodes.
pub fn decode_svg(svg: &str) -> String {
    try_decode_svg(svg).unwrap_or_else(|e| panic!("{e}"))
}

/// [`decode_svg`], with an error when no single QR code decodes (a malformed SVG still panics).
pub fn try_decode_svg(svg: &str) -> Result<String, String> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "the root element is <svg>");
    let [min_x, min_y, width, height] = view_box(root);
    // At least ~6 pixels per module for a code of up to ~80 modules: rqrr needs a few.
    let scale = (480.0 / width.min(height)).max(1.0).ceil();
    let mut canvas = Canvas {
        width: (width * scale).ceil() as usize,
        height: (height * scale).ceil() as usize,
        pixels: Vec::new(),
        origin: (min_x, min_y),
        scale,
    };
    canvas.pixels = vec![255; canvas.width * canvas.height];

    for node in root.descendants().filter(|n| n.is_element()) {
        let Some(gray) = node.attribute("fill").and_then(gray_of) else {
            continue;
        };
        match node.tag_name().name() {
            "rect" => {
                let length = |name, full| {
                    node.attribute(name)
                        .map_or(0.0, |v: &str| parse_length(v, full))
                };
                let x = length("x", width) + min_x;
                let y = length("y", height) + min_y;
                canvas.fill(
                    [
                        x,
                        y,
                        x + length("width", width),
                        y + length("height", height),
                    ],
                    gray,
                );
            }
            "path" => {
                for rect in subpath_boxes(node.attribute("d").unwrap_or("")) {
                    canvas.fill(rect, gray);
                }
            }
            _ => {}
        }
    }

    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(canvas.width, canvas.height, |x, y| {
            canvas.pixels[y * canvas.width + x]
        });
    match image.detect_grids().as_slice() {
        [grid] => grid
            .decode()
            .map(|(_, text)| text)
            .map_err(|e| format!("the QR code in the SVG does not decode: {e}")),
        grids => Err(format!(
            "{} QR codes found in the SVG, not one",
            grids.len()
        )),
    }
}

struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
    origin: (f64, f64),
    scale: f64,
}

impl Canvas {
    /// Paints every pixel whose centre lies in `[x0, y0, x1, y1]` (SVG user units).
    fn fill(&mut self, [x0, y0, x1, y1]: [f64; 4], gray: u8) {
        let to_px = |v: f64, origin: f64, max: usize| {
            (((v - origin) * self.scale - 0.5).ceil().max(0.0) as usize).min(max)
        };
        let (left, right) = (
            to_px(x0.min(x1), self.origin.0, self.width),
            to_px(x0.max(x1), self.origin.0, self.width),
        );
        let (top, bottom) = (
            to_px(y0.min(y1), self.origin.1, self.height),
            to_px(y0.max(y1), self.origin.1, self.height),
        );
        for y in top..bottom {
            self.pixels[y * self.width + left..y * self.width + right].fill(gray);
        }
    }
}

/// `[min-x, min-y, width, height]` from `viewBox`, else from `width` and `height`.
fn view_box(svg: roxmltree::Node) -> [f64; 4] {
    if let Some(view_box) = svg.attribute("viewBox") {
        let numbers: Vec<f64> = view_box
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("viewBox holds numbers"))
            .collect();
        return numbers.try_into().expect("viewBox holds four numbers");
    }
    let size = |name| parse_length(svg.attribute(name).expect("width and height"), 0.0);
    [0.0, 0.0, size("width"), size("height")]
}

/// A length in user units: a number, optionally with `px`, or a percentage of `full`.
fn parse_length(value: &str, full: f64) -> f64 {
    let value = value.trim();
    match value.strip_suffix('%') {
        Some(percent) => percent.parse::<f64>().expect("a percentage") * full / 100.0,
        None => value
            .trim_end_matches("px")
            .parse()
            .expect("a length in user units"),
    }
}

/// 255 for white, 0 for any other colour, None for no fill.
fn gray_of(fill: &str) -> Option<u8> {
    match fill.trim().to_ascii_lowercase().as_str() {
        "none" | "transparent" => None,
        "#fff" | "#ffffff" | "white" | "rgb(255,255,255)" => Some(255),
        _ => Some(0),
    }
}

/// The bounding box of every subpath of a path's `d` (M/m, L/l, H/h, V/v, Z/z), which for a
/// QR code drawn as rectangles is each rectangle.
fn subpath_boxes(d: &str) -> Vec<[f64; 4]> {
    let mut boxes = Vec::new();
    let mut points: Vec<(f64, f64)> = Vec::new();
    let (mut x, mut y) = (0.0, 0.0);
    let mut start = (0.0, 0.0);
    let close = |points: &mut Vec<(f64, f64)>, boxes: &mut Vec<[f64; 4]>| {
        if points.len() > 1 {
            let xs = points.iter().map(|p| p.0);
            let ys = points.iter().map(|p| p.1);
            boxes.push([
                xs.clone().fold(f64::INFINITY, f64::min),
                ys.clone().fold(f64::INFINITY, f64::min),
                xs.fold(f64::NEG_INFINITY, f64::max),
                ys.fold(f64::NEG_INFINITY, f64::max),
            ]);
        }
        points.clear();
    };
    for (command, args) in path_commands(d) {
        let relative = command.is_ascii_lowercase();
        match command.to_ascii_uppercase() {
            'M' | 'L' => {
                for (i, pair) in args.chunks(2).enumerate() {
                    let [px, py] = pair else {
                        panic!("odd number of coordinates in {command}");
                    };
                    let (bx, by) = if relative { (x, y) } else { (0.0, 0.0) };
                    (x, y) = (bx + px, by + py);
                    if command.eq_ignore_ascii_case(&'M') && i == 0 {
                        close(&mut points, &mut boxes);
                        start = (x, y);
                    }
                    points.push((x, y));
                }
            }
            'H' => {
                for &value in &args {
                    x = if relative { x + value } else { value };
                    points.push((x, y));
                }
            }
            'V' => {
                for &value in &args {
                    y = if relative { y + value } else { value };
                    points.push((x, y));
                }
            }
            'Z' => {
                close(&mut points, &mut boxes);
                (x, y) = start;
            }
            other => panic!("path command {other} does not draw a rectangle"),
        }
    }
    close(&mut points, &mut boxes);
    boxes
}

/// `d` split into commands and their numbers.
fn path_commands(d: &str) -> Vec<(char, Vec<f64>)> {
    let mut commands: Vec<(char, Vec<f64>)> = Vec::new();
    let mut number = String::new();
    let flush = |number: &mut String, commands: &mut Vec<(char, Vec<f64>)>| {
        if !number.is_empty() {
            let value = number.parse().expect("a number in the path");
            commands
                .last_mut()
                .expect("a path starts with a command")
                .1
                .push(value);
            number.clear();
        }
    };
    for c in d.chars() {
        match c {
            c if c.is_ascii_alphabetic() && c != 'e' && c != 'E' => {
                flush(&mut number, &mut commands);
                commands.push((c, Vec::new()));
            }
            '-' | '+' if !number.is_empty() && !number.ends_with(['e', 'E']) => {
                flush(&mut number, &mut commands);
                number.push(c);
            }
            c if c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E') => number.push(c),
            _ => flush(&mut number, &mut commands),
        }
    }
    flush(&mut number, &mut commands);
    commands
}

#[test]
fn a_ticket_code_round_trips_through_the_qr_svg() {
    // Shaped like a ticket's compact JWS: base64url header, payload and Ed25519 signature.
    let header = "eyJhbGciOiJFZERTQSIsImtpZCI6InRrLTIwMjYtMDEiLCJ0eXAiOiJKV1QifQ";
    let payload = "eyJyZWYiOiJCSy03UTJYOU0iLCJuIjoyLCJldnQiOjEyMzQ1NiwidHQiOjc4OSwiaWF0IjoxNzkyNjQwMDAwLCJub3RlIjoiQ2Fmw6kgTmlnaHQsIFrDvHJpY2giLCJ4IjoieHl6In0";
    let signature =
        "9vQ3mX_kT2pL8aZr-YbN4cW1sHfJ6dEgU0oIiVnKxRt7uM5yBqCwAeS3lPzD2hGjF8kOa-Xv4Nm1Tq9Ry0LbZw";
    let code = format!("{header}.{payload}.{signature}");
    assert!((270..=300).contains(&code.len()), "{}", code.len());

    let svg = qr_svg(&code).unwrap();
    assert_eq!(decode_svg(&svg), code);
}

#[test]
fn decoding_reads_the_svg_rather_than_trusting_it() {
    let svg = qr_svg("hello").unwrap();
    assert_eq!(decode_svg(&svg), "hello");
    // The same picture with its dark modules painted white holds no code at all.
    let blank = svg.replace(r##"fill="#000000""##, r##"fill="#ffffff""##);
    assert!(try_decode_svg(&blank).is_err());
}
