//! Fragments over Server-Sent Events (htmx's SSE extension, `sse-swap`): a [`Fragment`]
//! rendered into an [`Event`] named for its target.

use super::engine::Templates;
use super::error::TemplateError;
use super::render::Job;
use super::returns::Fragment;
use crate::http::sse::Event;

impl Templates {
    /// `fragment` rendered as a Server-Sent Event: named for its
    /// [`target`](Fragment::target) without `#` (else `fragment`), the HTML as its data (one
    /// `data:` line per line; the browser joins them back with `\n`). For htmx's SSE
    /// extension: `<div hx-ext="sse" sse-connect="/events"><ul sse-swap="task-added">`.
    ///
    /// Call it inside the stream (in its `map`), not before: the stream runs in the request's
    /// scopes (the session, the CSRF token, the user), so the fragment renders as it would in
    /// a response. There is no `request` in its context.
    ///
    /// ```
    /// use chirp::templates::{context, Fragment, Templates};
    /// let t = Templates::new()
    ///     .with_template("tasks.html", "{% block task %}<li>\n{{ title }}\n</li>{% endblock %}")?;
    /// let task = Fragment::new("tasks.html", "task", context! { title => "<b>" });
    /// let event = t.event(task.target("#task-added")).unwrap();
    /// assert_eq!(
    ///     event.to_string(),
    ///     "event: task-added\ndata: <li>\ndata: &lt;b&gt;\ndata: </li>\n\n"
    /// );
    /// # Ok::<(), chirp::ConfigurationError>(())
    /// ```
    ///
    /// # Errors
    /// [`TemplateError`], as for a render.
    pub fn event(&self, fragment: Fragment) -> Result<Event, TemplateError> {
        let name = fragment.event_name().to_owned();
        let html = Job::Fragment(fragment).run(self, None)?;
        Ok(Event::new().event(name).data(html))
    }
}
