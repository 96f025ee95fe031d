"""The model's code as MLflow logs it ("models from code"): loading a registered pngnn model
runs this file, which hands MLflow the Python model. Nothing is unpickled at load time; the
arrays it serves are the model's artifacts (``pngnn.tracking.pyfunc``)."""

from mlflow.models import set_model

from pngnn.tracking.pyfunc import RecommenderModel

set_model(RecommenderModel())
