//! Renders a GGUF's own chat template (`tokenizer.chat_template`) with minijinja.
//!
//! llama.cpp's built-in formatter drops a template's default system message, which
//! changes small models' answers; rendering the Jinja template itself keeps it.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};

use crate::llm::{LlmError, Message, Role};

/// A compiled chat template with the special tokens it refers to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// Marks where a prefilled assistant turn's text goes, so the prompt can be cut there.
const PREFILL_SENTINEL: &str = "\u{1F}recheck-prefill\u{1F}";

impl ChatTemplate {
    /// Compile `source` (Jinja, as stored in the GGUF).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        // HF templates call Python string methods (`.strip()`, `.startswith()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| LlmError::Inference(format!("the model's chat template does not compile: {e}")))?;
        Ok(Self { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    /// Render `messages` into the exact prompt text.
    ///
    /// When the last message is an assistant turn, the prompt ends inside that turn,
    /// right after its text, so generation continues it.
    pub fn render(&self, messages: &[Message]) -> Result<String, LlmError> {
        let prefill = messages.last().filter(|m| m.role == Role::Assistant);
        let mut shown: Vec<Message> = messages.to_vec();
        if let Some(last) = shown.last_mut().filter(|_| prefill.is_some()) {
            last.content = PREFILL_SENTINEL.to_string();
        }
        let template = self.env.get_template("chat").map_err(|e| LlmError::Inference(e.to_string()))?;
        let rendered = template
            .render(context! {
                messages => shown,
                add_generation_prompt => prefill.is_none(),
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .map_err(|e| LlmError::Inference(format!("rendering the chat template failed: {e}")))?;
        match prefill {
            None => Ok(rendered),
            Some(turn) => {
                let cut = rendered.rfind(PREFILL_SENTINEL).ok_or_else(|| {
                    LlmError::Inference("the chat template dropped the prefilled assistant turn".into())
                })?;
                Ok(format!("{}{}", &rendered[..cut], turn.content))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template, as stored in its GGUF.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn keeps_the_default_system_message() {
        let t = ChatTemplate::new(SMOLLM2, "", "<|im_end|>").unwrap();
        let p = t.render(&[Message::user("Is 7 prime?")]).unwrap();
        assert_eq!(
            p,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn prefilled_turn_ends_inside_the_assistant_message() {
        let t = ChatTemplate::new(SMOLLM2, "", "<|im_end|>").unwrap();
        let p = t.render(&[Message::system("S"), Message::user("Q"), Message::assistant("Step 1: 2+2=5.")]).unwrap();
        assert_eq!(
            p,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nStep 1: 2+2=5."
        );
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0].content.strip() }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(t.render(&[Message::user("  hi  ")]).unwrap(), "hi");
        let err = t.render(&[Message::system("x")]).unwrap_err();
        assert!(err.to_string().contains("first must be user"), "{err}");
    }
}
