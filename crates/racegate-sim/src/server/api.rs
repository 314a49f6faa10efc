//! The OpenAI-compatible request and response shapes, request validation, and the reference
//! answers (what a correct device computes for a request).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::kernel::Kernel;

/// Most completion tokens one request may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 256;
/// Tokens generated when a request names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 8;
/// Largest image side accepted, in pixels (a guard against decompression bombs).
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// A `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The model name; echoed back, and part of what the answer depends on.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Answer with server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// How many tokens to generate (1 to [`MAX_TOKENS_LIMIT`], default [`DEFAULT_MAX_TOKENS`]);
    /// `max_completion_tokens` is accepted too.
    #[serde(default, alias = "max_completion_tokens")]
    pub max_tokens: Option<u32>,
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// Text, or a list of text and image parts.
    pub content: Content,
}

/// A message's content.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<Part>),
}

/// One part of a multi-part message.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// A text part.
    Text {
        /// The text.
        text: String,
    },
    /// An image, as a `data:image/png;base64,...` URL.
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
    },
}

/// An `image_url` part's payload: `{"url": ...}`, or the URL string itself (some clients).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ImageUrl {
    /// `{"url": "data:image/png;base64,..."}`.
    Object {
        /// The URL; only `data:image/png;base64,` URLs are accepted.
        url: String,
    },
    /// `"data:image/png;base64,..."`.
    Url(String),
}

impl ImageUrl {
    /// The URL.
    pub fn url(&self) -> &str {
        match self {
            ImageUrl::Object { url } | ImageUrl::Url(url) => url,
        }
    }
}

/// A request error: HTTP status, OpenAI-style `type`, a stable `code`, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// `invalid_request_error` or `server_error`.
    pub kind: &'static str,
    /// Stable machine-readable code (`invalid_json`, `invalid_image_base64`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code,
            message: message.into(),
        }
    }

    /// The JSON body: `{"error":{"message":..,"type":..,"code":..}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "message": self.message, "type": self.kind, "code": self.code }
        })
    }
}

/// Which pipeline a request runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelineKind {
    /// Text only.
    Text,
    /// At least one image part.
    Vision,
}

impl PipelineKind {
    /// `text` or `vision`.
    pub fn name(self) -> &'static str {
        match self {
            PipelineKind::Text => "text",
            PipelineKind::Vision => "vision",
        }
    }
}

/// A decoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// A digest of the decoded pixels.
    pub digest: u64,
}

/// A validated request: everything the device work needs, nothing it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The pipeline it runs on.
    pub pipeline: PipelineKind,
    /// The model name echoed back.
    pub model: String,
    /// Digest of everything the answer depends on.
    pub seed: u64,
    /// The images, in order.
    pub images: Vec<Image>,
    /// Tokens to generate.
    pub max_tokens: u32,
    /// Whether to answer with server-sent events.
    pub stream: bool,
    /// Rough prompt size, for `usage`.
    pub prompt_tokens: u32,
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Parse and validate a request body (no side effects).
///
/// # Errors
/// 400 errors naming what is wrong: `invalid_json` (with serde's line and column),
/// `invalid_request` (empty conversation, `max_tokens` out of range), `unsupported_image_url`,
/// `invalid_image_base64`, `invalid_png`, `image_too_large`.
pub fn parse_request(body: &[u8]) -> Result<Job, ApiError> {
    let req: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid request body: {e}")))?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`messages` must hold at least one message",
        ));
    }
    let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if !(1..=MAX_TOKENS_LIMIT).contains(&max_tokens) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("`max_tokens` must be between 1 and {MAX_TOKENS_LIMIT}, got `{max_tokens}`"),
        ));
    }
    let model = req
        .model
        .clone()
        .unwrap_or_else(|| "racegate-sim".to_owned());
    let mut seed = fnv(FNV_OFFSET, model.as_bytes());
    let mut images = Vec::new();
    let mut prompt_chars = 0usize;
    for (i, message) in req.messages.iter().enumerate() {
        seed = fnv(seed, message.role.as_bytes());
        seed = fnv(seed, &[0xff]);
        match &message.content {
            Content::Text(text) => {
                prompt_chars += text.len();
                seed = fnv(seed, text.as_bytes());
            }
            Content::Parts(parts) => {
                for (j, part) in parts.iter().enumerate() {
                    match part {
                        Part::Text { text } => {
                            prompt_chars += text.len();
                            seed = fnv(seed, text.as_bytes());
                        }
                        Part::ImageUrl { image_url } => {
                            let image = decode_image(image_url.url()).map_err(|mut e| {
                                e.message = format!("messages[{i}].content[{j}]: {}", e.message);
                                e
                            })?;
                            seed = fnv(seed, &image.digest.to_le_bytes());
                            images.push(image);
                        }
                    }
                }
            }
        }
        seed = fnv(seed, &[0xfe]);
    }
    Ok(Job {
        pipeline: if images.is_empty() {
            PipelineKind::Text
        } else {
            PipelineKind::Vision
        },
        model,
        seed,
        images,
        max_tokens,
        stream: req.stream,
        prompt_tokens: (prompt_chars / 4).max(1) as u32,
    })
}

/// Decode a `data:image/png;base64,...` URL into an [`Image`].
///
/// # Errors
/// `unsupported_image_url`, `invalid_image_base64`, `invalid_png` or `image_too_large`.
pub fn decode_image(url: &str) -> Result<Image, ApiError> {
    const PREFIX: &str = "data:image/png;base64,";
    let Some(b64) = url.strip_prefix(PREFIX) else {
        let shown: String = url.chars().take(40).collect();
        return Err(ApiError::bad_request(
            "unsupported_image_url",
            format!("image url must start with `{PREFIX}`, got `{shown}`"),
        ));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_image_base64",
                format!("image is not valid base64: {e}"),
            )
        })?;
    let mut decoder = png::Decoder::new_with_limits(
        std::io::Cursor::new(&bytes),
        png::Limits {
            bytes: 64 * 1024 * 1024,
        },
    );
    decoder.set_transformations(png::Transformations::EXPAND);
    let invalid = |e: png::DecodingError| {
        ApiError::bad_request("invalid_png", format!("image is not a valid PNG: {e}"))
    };
    let mut reader = decoder.read_info().map_err(invalid)?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(ApiError::bad_request(
            "image_too_large",
            format!("image is {width}x{height}; the largest side accepted is {MAX_IMAGE_SIDE}"),
        ));
    }
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).map_err(invalid)?;
    let digest = fnv(
        fnv(
            FNV_OFFSET,
            &[width.to_le_bytes(), height.to_le_bytes()].concat(),
        ),
        &pixels[..frame.buffer_size()],
    );
    Ok(Image {
        width,
        height,
        digest,
    })
}

const VOCABULARY: [&str; 32] = [
    "the",
    "gate",
    "holds",
    "one",
    "stream",
    "at",
    "a",
    "time",
    "and",
    "every",
    "kernel",
    "waits",
    "its",
    "turn",
    "so",
    "no",
    "encoder",
    "is",
    "shared",
    "buffers",
    "commit",
    "once",
    "signals",
    "land",
    "after",
    "work",
    "completes",
    "answers",
    "stay",
    "right",
    "under",
    "load",
];

/// The kernels of a job, one per generated token, chained: token `i`'s kernel seed depends on
/// token `i-1`'s answer, so one corrupted token changes the rest of the answer.
pub fn token_seed(job_seed: u64, index: u32, previous: u64) -> u64 {
    let mut h = fnv(job_seed, &index.to_le_bytes());
    h = fnv(h, &previous.to_le_bytes());
    h
}

/// The kernel for the image encoder of a vision job.
pub fn image_seed(job: &Job) -> u64 {
    job.images.iter().fold(fnv(job.seed, b"vision"), |h, im| {
        fnv(h, &im.digest.to_le_bytes())
    })
}

/// The word a token answer stands for.
pub fn word(answer: u64) -> &'static str {
    VOCABULARY[(answer % VOCABULARY.len() as u64) as usize]
}

/// The prefix of a vision answer.
pub fn vision_prefix(job: &Job, image_answer: u64) -> String {
    let sizes: Vec<String> = job
        .images
        .iter()
        .map(|im| format!("{}x{}", im.width, im.height))
        .collect();
    format!(
        "[image {} #{:04x}] ",
        sizes.join(","),
        image_answer & 0xffff
    )
}

/// What a correct device answers for `job`, computed on the CPU with no device at all: the
/// reference clients and tests check served answers against.
pub fn reference_answer(job: &Job) -> String {
    let mut out = String::new();
    let mut previous = 0;
    if job.pipeline == PipelineKind::Vision {
        previous = Kernel {
            seed: image_seed(job),
            passes: 1,
        }
        .expected();
        out.push_str(&vision_prefix(job, previous));
    }
    for i in 0..job.max_tokens {
        let answer = Kernel {
            seed: token_seed(job.seed, i, previous),
            passes: 1,
        }
        .expected();
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word(answer));
        previous = answer;
    }
    out
}

/// `usage` of a response.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Prompt size estimate.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn png_data_url(width: u32, height: u32, fill: u8) -> String {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, width, height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().unwrap();
            w.write_image_data(&vec![fill; (width * height * 3) as usize])
                .unwrap();
        }
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    #[test]
    fn text_and_vision_requests_route_and_answer_deterministically() {
        let text = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let job = parse_request(text).unwrap();
        assert_eq!(job.pipeline, PipelineKind::Text);
        assert_eq!(job.max_tokens, DEFAULT_MAX_TOKENS);
        let answer = reference_answer(&job);
        assert_eq!(answer.split(' ').count(), DEFAULT_MAX_TOKENS as usize);
        assert_eq!(answer, reference_answer(&parse_request(text).unwrap()));
        let other = br#"{"model":"m","messages":[{"role":"user","content":"ho"}]}"#;
        assert_ne!(answer, reference_answer(&parse_request(other).unwrap()));

        let vision = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"what"}},{{"type":"image_url","image_url":{{"url":"{}"}}}}]}}],"max_tokens":3}}"#,
            png_data_url(2, 1, 9)
        );
        let job = parse_request(vision.as_bytes()).unwrap();
        assert_eq!(job.pipeline, PipelineKind::Vision);
        assert_eq!(job.images[0].width, 2);
        assert!(reference_answer(&job).starts_with("[image 2x1 #"));

        // The URL as a bare string, and max_completion_tokens, are accepted too.
        let bare = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":"{}"}}]}}],"max_completion_tokens":2}}"#,
            png_data_url(2, 1, 9)
        );
        let job = parse_request(bare.as_bytes()).unwrap();
        assert_eq!((job.pipeline, job.max_tokens), (PipelineKind::Vision, 2));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let code = |body: &[u8]| parse_request(body).unwrap_err().code;
        assert_eq!(code(b"{not json"), "invalid_json");
        assert_eq!(code(br#"{"messages":[]}"#), "invalid_request");
        assert_eq!(
            code(br#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#),
            "invalid_request"
        );
        let img = |url: &str| {
            format!(
                r#"{{"messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"{url}"}}}}]}}]}}"#
            )
        };
        assert_eq!(
            code(img("https://x/y.png").as_bytes()),
            "unsupported_image_url"
        );
        assert_eq!(
            code(img("data:image/png;base64,@@@").as_bytes()),
            "invalid_image_base64"
        );
        assert_eq!(
            code(img("data:image/png;base64,aGVsbG8=").as_bytes()),
            "invalid_png"
        );
        let err = parse_request(img("data:image/png;base64,aGVsbG8=").as_bytes()).unwrap_err();
        assert!(
            err.message.starts_with("messages[0].content[0]: "),
            "{}",
            err.message
        );
        assert_eq!(err.status, 400);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(&body);
        }

        #[test]
        fn image_decoder_never_panics(b64 in "[A-Za-z0-9+/=]{0,256}") {
            let _ = decode_image(&format!("data:image/png;base64,{b64}"));
        }

        #[test]
        fn any_text_prompt_parses_and_answers(prompt in ".{0,64}", tokens in 1u32..16) {
            let body = serde_json::json!({
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": tokens,
            });
            let job = parse_request(body.to_string().as_bytes()).unwrap();
            prop_assert_eq!(reference_answer(&job).split(' ').count(), tokens as usize);
        }
    }
}
