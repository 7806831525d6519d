//! Where reports go while a run is under way.

/// Sees each report (a plan step, a model action) as soon as it completes.
///
/// Implemented for closures taking `&E` (annotate the argument type: `|r: &StepReport| …`) and for
/// `tokio::sync::mpsc::UnboundedSender<E>` (reports are cloned into the channel; a closed channel is
/// ignored).
pub trait Observer<E> {
    /// Called once per completed report, in order.
    fn observe(&mut self, event: &E);
}

impl<E, F: FnMut(&E)> Observer<E> for F {
    fn observe(&mut self, event: &E) {
        self(event)
    }
}

impl<E: Clone> Observer<E> for tokio::sync::mpsc::UnboundedSender<E> {
    fn observe(&mut self, event: &E) {
        // The receiver may have gone away; the run itself does not depend on it.
        let _ = self.send(event.clone());
    }
}
