//! `[assistant]`: the shopping assistant's disclosure, its help articles, when it hands over to
//! a person, how long transcripts are kept, and the optional language model behind it
//! (`[assistant.llm]`, OpenAI-compatible chat completions; its key comes from the environment).

use std::collections::BTreeMap;

use serde::Serialize;

/// `[assistant]`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AssistantPolicy {
    /// Said in the first reply of every conversation (EU AI Act Art. 50, California's BOT Act).
    pub disclosure: String,
    pub disclosure_version: String,
    /// What the assistant needs the person's grant for to use their data (recommendations,
    /// the model's context).
    pub purpose: String,
    /// What order status needs (the person's own orders, told to them).
    pub service_purpose: String,
    /// Markdown files (paths relative to the deployment directory) the assistant answers from.
    pub help: Vec<String>,
    /// Topics handed to a person at once: topic → words and phrases that name it.
    pub sensitive_topics: BTreeMap<String, Vec<String>>,
    /// Replies in a row that did not understand before a person takes over.
    pub max_misunderstandings: u32,
    /// Below this confidence (0–1) the assistant says it is unsure and offers a person.
    pub min_confidence: f64,
    /// Conversations are deleted this many days after their last message.
    pub retention_days: u32,
    /// What the customer is told when a person takes over.
    pub handoff_message: String,
    pub llm: Option<LlmPolicy>,
}

/// `[assistant.llm]`: an OpenAI-compatible chat-completions endpoint (Ollama, vLLM,
/// llama.cpp's server, a hosted API).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LlmPolicy {
    /// e.g. `http://127.0.0.1:11434/v1` (`/chat/completions` is appended).
    pub base_url: String,
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer token), if any.
    pub api_key_env: Option<String>,
    pub timeout_ms: u64,
    pub max_tokens: u32,
    pub temperature: f64,
}

impl Default for AssistantPolicy {
    fn default() -> Self {
        let topic = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        Self {
            disclosure: "You are chatting with the shop's automated assistant, an AI, not a person. It answers from the shop's catalog and help pages. Type \"human\" at any time to reach a member of staff.".into(),
            disclosure_version: "ai-disclosure-1".into(),
            purpose: "personalization".into(),
            service_purpose: "service".into(),
            help: Vec::new(),
            sensitive_topics: BTreeMap::from([
                (
                    "complaint".to_owned(),
                    topic(&["complaint", "complain", "unacceptable", "disgusted", "furious", "ombudsman"]),
                ),
                (
                    "health".to_owned(),
                    topic(&["allergy", "allergic", "injury", "injured", "pregnant", "medical", "medication", "doctor", "poison"]),
                ),
                (
                    "legal".to_owned(),
                    topic(&["lawyer", "solicitor", "legal action", "sue", "court", "attorney", "trading standards"]),
                ),
                (
                    "payment_dispute".to_owned(),
                    topic(&["chargeback", "charged twice", "double charged", "dispute", "fraud", "unauthorised payment", "unauthorized payment", "stolen card"]),
                ),
            ]),
            max_misunderstandings: 2,
            min_confidence: 0.35,
            retention_days: 180,
            handoff_message: "I have passed this conversation to a member of our team. A person will reply here, usually within one working day; you can close this window and come back to this conversation.".into(),
            llm: None,
        }
    }
}

impl AssistantPolicy {
    /// The sensitive topic `text` (lower-cased) names, if any: whole words or phrases.
    pub fn sensitive_topic(&self, lower: &str) -> Option<&str> {
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .filter(|w| !w.is_empty())
            .collect();
        let joined = format!(" {} ", words.join(" "));
        self.sensitive_topics.iter().find_map(|(topic, names)| {
            names
                .iter()
                .any(|n| joined.contains(&format!(" {} ", n.to_lowercase())))
                .then_some(topic.as_str())
        })
    }
}
